#!/usr/bin/python3
"""The appliance test's agent inside the VM (test images only, image/build --test-agent).

Reads one JSON request a line from the virtio-serial port ``vci.agent``:
``{"id": N, "cmd": "shell command", "timeout": seconds}``, runs the command as root with
bash, and answers one JSON line ``{"id": N, "rc": R, "out": "...", "err": "...",
"seconds": S}``. A command that outlives its timeout is killed with its process group
(rc -9). Commands that start background processes redirect their output (the agent waits for
stdout and stderr to close). Only the host's QEMU process reaches this port.
"""

import json
import os
import subprocess
import sys
import time

PORT = "/dev/virtio-ports/vci.agent"


def answer(request: dict) -> dict:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        ["/bin/bash", "-c", request["cmd"]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=float(request.get("timeout", 60)))
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        rc = -9
    return {
        "id": request.get("id"),
        "rc": rc,
        "out": out.decode(errors="replace"),
        "err": err.decode(errors="replace"),
        "seconds": round(time.monotonic() - t0, 3),
    }


def main() -> None:
    while not os.path.exists(PORT):
        time.sleep(0.2)
    fd = os.open(PORT, os.O_RDWR)
    print("vci-test-agent: listening on", PORT, flush=True)
    buf = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:  # the host side is not connected: wait for it
            time.sleep(0.2)
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                request = json.loads(line)
            except ValueError:
                continue
            reply = (json.dumps(answer(request)) + "\n").encode()
            try:
                _write_all(fd, reply)
            except OSError as err:
                print("vci-test-agent: reply lost:", err, file=sys.stderr, flush=True)


def _write_all(fd: int, data: bytes) -> None:
    """The whole reply: a virtio-serial port takes a large write in parts (os.write returns how
    much it took), and a reply cut short never reaches its newline on the host."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    main()
