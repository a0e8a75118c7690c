"""Shared fixtures: the simulated vehicle as a separate process (``vci sim``), over real
sockets on loopback, with its own CAN multicast channel per test so that tests never hear
each other."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

READY_TIMEOUT = 15.0
ENET_PROTOCOLS = ("doip", "hsfz")
"""the car's Ethernet protocols; end-to-end tests run over each (docs/enet.md)"""
TRANSPORTS = (*ENET_PROTOCOLS, "can")


def free_can_channel() -> str:
    return (
        f"239.74.{random.randint(1, 254)}.{random.randint(1, 254)}:{random.randint(20000, 60000)}"
    )


@dataclass
class SimHandle:
    process: subprocess.Popen[str]
    doip_host: str
    doip_port: int
    can_interface: str
    can_channel: str
    control_url: str
    hsfz_host: str = ""
    hsfz_port: int = 0
    """TCP diagnostic port of the HSFZ face"""
    hsfz_control_port: int = 0
    """UDP identification port of the HSFZ face"""
    output: list[str] = field(default_factory=list)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.control_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/state")

    def inject(self, **faults: Any) -> None:
        self._call("POST", "/faults", faults)

    def set_battery(self, volts: float) -> None:
        self._call("POST", "/battery", {"volts": volts})

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    def cli_args(self, transport: str) -> list[str]:
        """Transport flags of the vci CLI that reach this simulator."""
        if transport == "doip":
            return ["--doip", f"{self.doip_host}:{self.doip_port}"]
        if transport == "hsfz":
            return ["--hsfz", f"{self.hsfz_host}:{self.hsfz_port}"]
        return ["--can", "--can-interface", self.can_interface, "--can-channel", self.can_channel]


def _start(extra: tuple[str, ...]) -> SimHandle:
    channel = free_can_channel()
    cmd = [
        sys.executable,
        "-m",
        "firmware_py",
        "sim",
        "--doip-port",
        "0",
        "--control-port",
        "0",
        "--hsfz-port",
        "0",
        "--hsfz-control-port",
        "0",
        "--can-channel",
        channel,
        "--announce-to",
        "",
        *extra,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output: list[str] = []
    ready: list[str] = []
    got = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if line.startswith("vci-sim ready"):
                ready.append(line)
                got.set()
        got.set()

    threading.Thread(target=pump, daemon=True).start()
    if not got.wait(READY_TIMEOUT) or not ready:
        proc.kill()
        raise RuntimeError("vci sim did not start:\n" + "".join(output))
    fields = dict(part.split("=", 1) for part in ready[0].split()[2:])
    host, _, port = fields["doip"].rpartition(":") if fields["doip"] != "-" else ("", "", "0")
    interface, _, chan = fields["can"].partition(":")
    hsfz = fields.get("hsfz", "-")
    hsfz_host, _, hsfz_ports = hsfz.rpartition(":") if hsfz != "-" else ("", "", "0/0")
    tcp, _, udp = hsfz_ports.partition("/")
    return SimHandle(
        proc,
        host,
        int(port),
        interface,
        chan,
        fields["control"],
        hsfz_host,
        int(tcp or 0),
        int(udp or 0),
        output,
    )


def _stop(sim: SimHandle) -> None:
    if sim.process.poll() is None:
        sim.process.send_signal(signal.SIGTERM)
        try:
            sim.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.process.kill()
            sim.process.wait(timeout=5)
    time.sleep(0.05)  # let the output pump finish
    text = "".join(sim.output)
    assert "Traceback" not in text, "the simulator crashed:\n" + text


@pytest.fixture
def start_sim() -> Iterator[Callable[..., SimHandle]]:
    """Factory: ``start_sim("--fault", "silent:DSC")`` starts a simulator with extra options."""
    started: list[SimHandle] = []

    def start(*extra: str) -> SimHandle:
        sim = _start(extra)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        _stop(sim)


@pytest.fixture(params=ENET_PROTOCOLS)
def enet(request: pytest.FixtureRequest) -> str:
    """Each ENET protocol in turn, for tests that reach the simulator over ENET."""
    return str(request.param)


@pytest.fixture
def sim_process(start_sim: Callable[..., SimHandle]) -> SimHandle:
    """``vci sim`` in its own process, fresh for each test."""
    return start_sim()


def free_port() -> int:
    """A TCP port on loopback that is free right now (for a process told to listen on it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class GatewayProcess:
    """A ``vci gateway`` in its own process, past its ``vci-gateway ready`` line."""

    process: subprocess.Popen[str]
    port: int
    """the page's HTTP port on 127.0.0.1"""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> str:
        """Stop the gateway; its remaining output, asserted free of tracebacks."""
        stop_process(self.process)
        assert self.process.stdout is not None
        output = self.process.stdout.read()
        assert "Traceback" not in output, "the gateway crashed:\n" + output
        return output


def start_gateway_process(
    sim: SimHandle,
    env: dict[str, str],
    transport: str = "doip",
    extra_args: tuple[str, ...] = (),
    port: int | None = None,
) -> GatewayProcess:
    """Start ``vci gateway --port PORT <transport flags reaching sim> *extra_args`` with ``env``
    (give it ``VCI_CONFIG``) and wait for its ready line. ``port`` defaults to a free one.
    Stop it with ``.stop()`` (or ``stop_process(handle.process)``)."""
    port = port or free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_py",
            "gateway",
            "--port",
            str(port),
            *sim.cli_args(transport),
            *extra_args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "vci-gateway ready" not in line:
        stop_process(proc)
        raise AssertionError("vci gateway did not start:\n" + line + proc.stdout.read())
    return GatewayProcess(proc, port)


@dataclass
class Box:
    """A box's configuration in a temporary directory, with the portal's TEST signing key
    (generated here) trusted, so tests can issue real tickets and add them with ``vci ticket``."""

    root: Any
    config: Any
    keys_dir: Any
    device: str

    def issue(self, tariff: str, **kwargs: Any) -> str:
        from portal import keys, tickets

        kid, key = keys.load_signing_key(self.keys_dir)
        return tickets.issue(
            key, kid, tariff=tariff, device=kwargs.pop("device", self.device), **kwargs
        )

    def vci(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "VCI_CONFIG": str(self.config)}
        return subprocess.run(
            [sys.executable, "-m", "firmware_py", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture
def box(tmp_path: Any) -> Box:
    from portal import keys

    keys_dir = tmp_path / "portal-keys"
    keys.generate(keys_dir, "test-portal-key")  # TEST material, made for this test
    trusted = tmp_path / "box-trusts"
    trusted.mkdir()
    (trusted / "test-portal-key.pub").write_bytes((keys_dir / "test-portal-key.pub").read_bytes())
    config = tmp_path / "vci.toml"
    config.write_text(
        f'[storage]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[security]\nportal_keys_dir = "{trusted}"\n'
        '[device]\nid = "box-test-0001"\n'
    )
    return Box(tmp_path, config, keys_dir, "box-test-0001")


@pytest.fixture
def basic_box(box: Box, monkeypatch: pytest.MonkeyPatch) -> Box:
    """A box with a Basic 1-day ticket, used by every ``vci`` this test starts (VCI_CONFIG)."""
    proc = box.vci("ticket", "add", box.issue("basic-1d"))
    assert proc.returncode == 0, proc.stderr
    monkeypatch.setenv("VCI_CONFIG", str(box.config))
    return box
