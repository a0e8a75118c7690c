"""Helpers shared by the benchmarks: the simulator in its own process, a raw TCP peer."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from importlib import resources
from pathlib import Path


def bench_vehicle(dme_region: int = 32 << 20, dme_block: int = 0x10002) -> Path:
    """The G30 vehicle file with a larger DME flash region and 64 KiB download blocks."""
    text = (resources.files("firmware_py.sim") / "vehicles" / "g30.toml").read_text()
    text, n = re.subn(
        r"flash = \{ address = 0x00100000, size = 0x00400000, max_block_length = 0x1002 \}",
        f"flash = {{ address = 0x00100000, size = {dme_region:#x}, max_block_length = {dme_block:#x} }}",
        text,
    )
    assert n == 1, "the DME flash line of g30.toml changed; update bench/common.py"
    path = Path(tempfile.mkdtemp(prefix="vci-bench-")) / "g30-bench.toml"
    path.write_text(text)
    return path


class Sim:
    """``vci sim`` in its own process, DoIP (and with ``hsfz=True`` HSFZ) on free loopback ports,
    no CAN."""

    def __init__(self, *extra: str, hsfz: bool = False) -> None:
        enet = ("--hsfz-port", "0", "--hsfz-control-port", "0") if hsfz else ("--no-hsfz",)
        cmd = [
            sys.executable,
            "-m",
            "firmware_py",
            "sim",
            "--doip-port",
            "0",
            "--no-can",
            *enet,
            "--announce-to",
            "",
            *extra,
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("vci-sim ready"):
            self.proc.kill()
            raise RuntimeError(f"vci sim did not start: {line}{self.proc.stdout.read()}")
        fields = dict(p.split("=", 1) for p in line.split()[2:])
        self.host, port = fields["doip"].rsplit(":", 1)
        self.port = int(port)
        self.control = fields["control"]
        self.hsfz_port = int(fields["hsfz"].rsplit(":", 1)[1].split("/")[0]) if hsfz else 0
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


RAW_SERVER = textwrap.dedent(
    """
    import socket, struct, sys
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
    print(srv.getsockname()[1], flush=True)
    conn, _ = srv.accept(); conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(1 << 20); view = memoryview(buf)
    while True:
        head = conn.recv(8, socket.MSG_WAITALL)
        if len(head) < 8:
            break
        length = struct.unpack(">I", head[4:])[0]
        got = 0
        while got < length:
            n = conn.recv_into(view[: length - got])
            if not n:
                sys.exit(0)
            got += n
        conn.sendall(bytes(13))  # an acknowledgement of a DoIP ACK's size
    """
)


class RawTcpPeer:
    """A plain TCP peer in its own process that answers each length-prefixed message with 13 bytes:
    the request/response shape of a DoIP TransferData without any protocol work."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RAW_SERVER], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline())
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def exchange(self, message: bytes) -> None:
        self.sock.sendall(message)
        self.sock.recv(13, socket.MSG_WAITALL)

    def close(self) -> None:
        self.sock.close()
        self.proc.wait(timeout=10)


def raw_tcp(total: int, block: int) -> float:
    """Bytes/s of ``total`` bytes sent as DoIP-sized messages of ``block`` bytes to a raw peer."""
    import struct
    import time

    peer = RawTcpPeer()
    message = struct.pack(">BBHI", 2, 0xFD, 0x8001, block + 6) + bytes(block + 6)
    try:
        started = time.perf_counter()
        for _ in range(total // block):
            peer.exchange(message)
        return total / (time.perf_counter() - started)
    finally:
        peer.close()
