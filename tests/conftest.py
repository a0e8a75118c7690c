"""Shared fixtures: the simulated vehicle as a separate process (``vci sim``), over real
sockets on loopback, with its own CAN multicast channel per test so that tests never hear
each other."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
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
    hsfz_host: str
    hsfz_port: int
    """TCP diagnostic port of the HSFZ face"""
    hsfz_control_port: int
    """UDP identification port of the HSFZ face"""
    output: ProcessOutput
    """what the simulator printed"""

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

    def obd(self, action: str, code: str | None = None) -> dict[str, Any]:
        """The engine's OBD state: ``drive_cycle``, ``clear`` or ``fault`` (``code``)."""
        return self._call("POST", "/obd", {"action": action, "code": code})

    def cli_args(self, transport: str) -> list[str]:
        """Transport flags of the vci CLI that reach this simulator."""
        if transport == "doip":
            return ["--doip", f"{self.doip_host}:{self.doip_port}"]
        if transport == "hsfz":
            return ["--hsfz", f"{self.hsfz_host}:{self.hsfz_port}"]
        return ["--can", "--can-interface", self.can_interface, "--can-channel", self.can_channel]


class ProcessOutput:
    """A process's merged stdout and stderr, read on a thread all along (so the pipe never fills
    and the process never blocks on a log line); tests wait for a line with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, words: str, timeout: float) -> str:
        """The first line that contains ``words``, waiting up to ``timeout`` s for it; an
        AssertionError with the whole output if it does not come or the process ends first."""
        found = self._wait(
            lambda: next((x for x in self.lines if words in x), None), timeout, repr(words)
        )
        if found is None:
            raise AssertionError(
                f"the process exited ({self.process.poll()}) without {words!r}:\n" + self.text
            )
        return found

    def wait_for_lines(self, count: int, timeout: float) -> bool:
        """Whether the process printed ``count`` lines (False: it ended with fewer), waiting up
        to ``timeout`` s; an AssertionError with the output if neither comes in time."""
        return bool(self._wait(lambda: len(self.lines) >= count or None, timeout, f"{count} lines"))

    def _wait(self, found: Callable[[], Any], timeout: float, what: str) -> Any:
        """``found()`` once it is not None, or None once the output ended without it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (value := found()) is None and not self._ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout} s:\n" + "".join(self.lines))
                self._changed.wait(left)
            return value

    def finish(self, timeout: float = 10) -> str:
        """The whole output, once the (ended) process's last lines are read."""
        self._reader.join(timeout)
        return self.text


class SlowStopWarning(UserWarning):
    """A process needed SIGKILL: its SIGTERM handling waits for something (a defect that cost
    CI the whole ``timeout`` in silence: an open ENET bridge held the gateway 20 s)."""


def stop_process(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout`` s (a SlowStopWarning in the
    run's warnings summary: find what its stop waits for)."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        warnings.warn(
            SlowStopWarning(f"{process.args!r} did not stop within {timeout} s of SIGTERM"),
            stacklevel=2,
        )


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
    output = ProcessOutput(proc)
    try:
        ready = output.wait_for("vci-sim ready", READY_TIMEOUT)
    except AssertionError as err:
        proc.kill()
        raise RuntimeError(f"vci sim did not start: {err}") from None
    fields = dict(part.split("=", 1) for part in ready.split()[2:])
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
    stop_process(sim.process, timeout=10)
    text = sim.output.finish()
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


def vci(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``vci ARGS`` run to its end (``env``: its whole environment, default this one)."""
    return subprocess.run(
        [sys.executable, "-m", "firmware_py", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


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
        """``vci ARGS`` with this box's configuration."""
        return vci(*args, env={**os.environ, "VCI_CONFIG": str(self.config)}, timeout=timeout)


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


START_TIMEOUT = 30.0
"""seconds a started gateway or portal process has to print its ready line"""


def free_port() -> int:
    """A TCP port free on loopback now (the caller binds it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class GatewayProcess:
    """A ``vci gateway`` process started by ``start_gateway_process``; a context manager that
    stops it."""

    process: subprocess.Popen[str]
    url: str
    """its local page, ``http://127.0.0.1:PORT``"""
    output: ProcessOutput
    """what it printed (stdout and stderr)"""

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> str:
        """SIGTERM (SIGKILL if it hangs); the gateway's whole output, asserted free of
        tracebacks (a crash in any of its tasks is a failure of the test that ran it)."""
        stop_process(self.process)
        output = self.output.finish()
        assert "Traceback" not in output, "the gateway crashed:\n" + output
        return output

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_gateway_process(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    timeout: float = START_TIMEOUT,
) -> GatewayProcess:
    """``vci gateway --port PORT ARGS`` (``args``: transport flags and other options; ``env``:
    its whole environment, default this one), returned once it printed its ready line; it is
    killed and the test fails with its output if that does not come within ``timeout`` s."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "firmware_py", "gateway", "--port", str(port), *args],
        env={**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    gateway = GatewayProcess(process, f"http://127.0.0.1:{port}", ProcessOutput(process))
    try:
        gateway.output.wait_for("vci-gateway ready", timeout)
    except AssertionError:
        process.kill()
        process.wait(timeout=10)
        raise
    return gateway


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB file system (tmpfs) for the state directory, so that tests can fill it."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte (a real ENOSPC from now on); remove the file to free it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (65536, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler
