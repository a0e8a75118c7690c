"""The appliance VM: the box's Debian image (image/build) booted under QEMU, one per session.

``appliance_image`` builds the image with the test agent (or reuses the cached one, see
docs/appliance-test.md), its update bundles signed under a TEST release CA made here
(``release_keys``); ``vm`` boots the box's disk image (GPT: EFI system partition, root slots A
and B, data partition; image/disk.py) behind a throw-away qcow2 overlay with the kernel and
initrd of slot A given directly (fast), the i6300esb watchdog, and a virtio-serial port to the
test agent inside (image/test-agent/), through which ``vm.run(cmd, timeout)`` runs shell
commands as root. ``Vm(..., efi=True)`` boots the same disk through OVMF and GRUB instead (the
A/B slot choice of the update tests, tests/appliance/test_vm_update.py), and reboots.
``Vm(..., host_services={guest port: host port})`` gives the VM a NIC on QEMU's user
networking with ``restrict=on`` (no way out) whose only reachable address is HOST_ADDRESS, each
port forwarded to a service on the host's 127.0.0.1 (the portal test, test_vm_portal.py); the
other VMs have no network card (``-nic none``). Every wait has a deadline; a QEMU that does not
answer is killed.
Each check records its time with ``vm.timed(name)``; the times are printed at the end of the
run (``pytest_terminal_summary``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1200.0
BOOT_TIMEOUT = 300.0
"""boot to the agent's first answer; about 20 s under TCG on 2 cores, more on a loaded machine"""
TIMINGS: list[tuple[str, float]] = []
VCI = "/opt/vci/venv/bin/vci"
"""the project as the image installs it (from the wheel)"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # the first test's set-up builds the image and boots the VM (minutes when cold)
    for item in items:
        path = Path(str(item.fspath))
        if path.parent == Path(__file__).parent and path.name.startswith("test_vm"):
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT + BOOT_TIMEOUT))


RUNNING: list[Vm] = []
"""the booted VM, for the failure report below"""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed VM check gets the box's side in its report: failed units and the gateway's
    journal (a check from outside shows only that the page did not answer)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and RUNNING and call.when == "call":
        # the console first: it is a file, there even when the guest hangs and the agent is gone
        report.sections.append(("the VM's console", RUNNING[0].tail(80)))
        with contextlib.suppress(Exception):
            found = RUNNING[0].run(
                "systemctl --failed --no-legend --plain; systemctl status vci-gateway.service "
                "--no-pager -n 0; journalctl -b -u vci-gateway.service -o short-monotonic "
                "--no-pager | grep -v PinFactoryFallback | tail -n 60; "
                "journalctl -b -u vci-update.service -o cat --no-pager | tail -n 20",
                timeout=30,
            )
            report.sections.append(("the VM's units and the gateway's journal", found.out))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.section("appliance VM timings")
        for name, seconds in TIMINGS:
            terminalreporter.write_line(f"{name:<60} {seconds:8.1f} s")


def record(name: str, seconds: float) -> None:
    TIMINGS.append((name, seconds))
    print(f"appliance: {name}: {seconds:.1f} s", flush=True)


@dataclass
class CommandResult:
    rc: int
    out: str
    err: str
    seconds: float

    def __str__(self) -> str:
        return f"rc={self.rc} ({self.seconds:.1f} s)\nstdout:\n{self.out}\nstderr:\n{self.err}"


class VmError(RuntimeError):
    """The VM or its agent did not answer in time."""


def qemu_accel() -> str:
    """KVM only when the host's KVM module is really there: on a nested /dev/kvm a stock Debian
    kernel hangs, so the fallback is TCG with one host thread per virtual CPU."""
    if os.access("/dev/kvm", os.R_OK | os.W_OK) and any(
        Path(f"/sys/module/{m}").exists() for m in ("kvm_intel", "kvm_amd")
    ):
        return "kvm"
    return "tcg,thread=multi"


HOST_ADDRESS = "10.0.2.100"
"""where the VM reaches the host's forwarded loopback services (guestfwd)"""
UPLINK_MAC = "52:54:00:56:43:49"
"""the forwarded NIC's MAC: image/test-agent/10-vci-test-uplink.network matches it"""
HOST_RELAY = Path(__file__).with_name("host_relay.py")


def user_network(host_services: dict[int, int]) -> list[str]:
    """QEMU's ``-nic`` for a VM that reaches only ``host_services`` ({port on HOST_ADDRESS:
    port on the host's 127.0.0.1}): user networking with ``restrict=on`` (the guest cannot reach
    the host or anything beyond; explicit forwards still work, QEMU's docs) and one ``guestfwd``
    per service, each guest connection relayed by host_relay.py (``cmd:``, one process per
    connection)."""
    for path in (HOST_RELAY, Path(sys.executable)):
        # the option's syntax: a comma would end the command (QEMU doubles commas to escape)
        assert "," not in str(path), f"QEMU's guestfwd cannot take a path with a comma: {path}"
    forwards = "".join(
        f",guestfwd=tcp:{HOST_ADDRESS}:{guest}-cmd:{sys.executable} {HOST_RELAY} {host}"
        for guest, host in sorted(host_services.items())
    )
    return ["-nic", f"user,model=virtio-net-pci,mac={UPLINK_MAC},restrict=on{forwards}"]


OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


class Qmp:
    """QEMU's machine protocol (QMP) on its Unix socket: commands, and the events QEMU sends in
    between (kept in ``events``). Written here rather than taken from QEMU's ``qemu.qmp``
    package: that one is asyncio, the fixture is synchronous, and two commands and one event
    are all it asks."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10.0)
        self.sock.connect(str(path))
        self.buf = b""
        self.events: list[dict[str, Any]] = []
        self._message()  # the greeting
        self.call("qmp_capabilities")

    def _message(self) -> dict[str, Any] | None:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return dict(json.loads(line))

    def call(self, command: str) -> Any:
        self.sock.sendall(json.dumps({"execute": command}).encode() + b"\n")
        while True:
            message = self._message()
            if message is None:
                raise OSError("QEMU closed its QMP connection")
            if "event" in message:
                self.events.append(message)
            elif "error" in message:
                raise OSError(f"QMP {command}: {message['error']}")
            else:
                return message.get("return")

    def drain(self) -> list[dict[str, Any]]:
        """The events up to the end of the connection (after QEMU exited)."""
        with contextlib.suppress(OSError, ValueError):
            while (message := self._message()) is not None:
                if "event" in message:
                    self.events.append(message)
        return self.events

    def close(self) -> None:
        self.sock.close()


class Vm:
    """A booted appliance VM and its agent connection."""

    def __init__(
        self,
        manifest: Path,
        workdir: Path,
        efi: bool = False,
        stick: Path | None = None,
        host_services: dict[int, int] | None = None,
        disk_gib: float = 2.0,
    ) -> None:
        self.efi = efi
        self.host_services = host_services
        """{port on HOST_ADDRESS: port on the host's loopback}; None: no network card"""
        self.stick = stick
        """a file system image attached read-only as /dev/vdb (a USB stick with bundles)"""
        self.image_dir = manifest.parent
        self.info = json.loads(manifest.read_text())
        self.workdir = workdir
        self.console = workdir / "console.log"
        self.agent_path = workdir / "agent.sock"
        self.qmp_path = workdir / "qmp.sock"
        self.disk_gib = disk_gib
        """free space the VM's disk overlay may grow into (checked before each boot): QEMU
        pauses a guest whose disk write finds the host's disk full, which looks like a hang"""
        self.process: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.qmp: Qmp | None = None
        self.cold_starts = 0
        """guest resets turned into a new QEMU process (EFI machines, see :meth:`_launch`)"""
        self._buf = b""
        self._next_id = 0
        self._probes: dict[str, set[int]] = {}
        """ids of the probes (quiet requests) sent and not yet answered, by command"""
        self.started: list[str] = []

    def start(self) -> float:
        """Boot (again, after :meth:`kill`: the disk overlay is kept); seconds to the agent."""
        t0 = time.monotonic()
        self._launch()
        deadline = t0 + BOOT_TIMEOUT
        # the agent answers once the guest's systemd has started it; until then requests may be
        # lost (the port is closed in the guest), so ask again every few seconds
        while True:
            self._check_alive()
            if time.monotonic() > deadline:
                raise self.stuck(f"the VM's agent did not answer within {BOOT_TIMEOUT:.0f} s")
            if self._request({"cmd": "true", "timeout": 5}, wait=3.0, quiet=True) is not None:
                return time.monotonic() - t0

    def _launch(self) -> None:
        """QEMU started on the kept disk overlay, its agent and QMP sockets connected; does not
        wait for the guest.

        An EFI machine's guest reset ends QEMU (``-action reboot=shutdown``) and
        :meth:`_check_alive` launches it again: every reboot is a cold start. A warm reset of
        OVMF under TCG now and then never reached GRUB (no output after the kernel's
        "reboot: machine restart", QEMU running, for 300 s and more; warm-reset hangs of OVMF
        are a known class, tianocore/edk2#12441). The box itself is not emulated here, only
        its disk: GRUB, the slots and grubenv see the same reboots."""
        free = shutil.disk_usage(self.workdir).free / 2**30
        if free < self.disk_gib:
            raise VmError(
                f"{free:.1f} GiB free in {self.workdir}; this VM's disk overlay needs up to "
                f"{self.disk_gib:.1f} GiB (QEMU pauses a guest on a full host disk)"
            )
        overlay = self.workdir / "disk.qcow2"
        if not overlay.exists():
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                 str(self.image_dir / self.info["disk"]), str(overlay)],
                check=True,
            )  # fmt: skip
        if self.efi:
            variables = self.workdir / "OVMF_VARS.fd"
            if not variables.exists():
                shutil.copyfile(OVMF_VARS, variables)
            boot = [
                "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,file={variables}",
            ]  # fmt: skip
        else:
            boot = [
                "-no-reboot",
                "-kernel", str(self.image_dir / self.info["kernel"]),
                "-initrd", str(self.image_dir / self.info["initrd"]),
                "-append", self.info["cmdline"] + " panic=-1",
            ]  # fmt: skip
        self.agent_path.unlink(missing_ok=True)
        self.qmp_path.unlink(missing_ok=True)
        self._buf = b""
        self._probes = {}
        cmd = [
            "qemu-system-x86_64", "-accel", qemu_accel(), "-m", "1024", "-smp", "2",
            "-nographic",
            *(user_network(self.host_services) if self.host_services else ["-nic", "none"]),
            *boot,
            # zeros the guest writes (a RAUC slot image is mostly zeros) are not stored: the
            # overlay grows by what the guest really wrote
            "-drive", f"file={overlay},format=qcow2,if=virtio,discard=unmap,detect-zeroes=unmap",
            *(["-drive", f"file={self.stick},format=raw,if=virtio,readonly=on"]
              if self.stick else []),
            "-device", "i6300esb", "-action", "watchdog=reset",
            *(["-action", "reboot=shutdown"] if self.efi else []),
            # the console of every boot of this machine, after a power cut too (append: a
            # failure report shows what came before the hang)
            "-chardev", f"file,id=console,path={self.console},append=on",
            "-serial", "chardev:console", "-monitor", "none",
            # asked when the guest stops answering: a guest paused on a disk error looks hung
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            "-chardev", f"socket,id=agent,path={self.agent_path},server=on,wait=off",
            "-device", "virtio-serial",
            "-device", "virtserialport,chardev=agent,name=vci.agent",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60.0
        while not (self.agent_path.exists() and self.qmp_path.exists()):
            if self.process.poll() is not None:
                raise self._exited()
            if time.monotonic() > deadline:
                raise VmError("QEMU made no agent or QMP socket within 60 s")
            time.sleep(0.1)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self.agent_path))
        self.qmp = Qmp(self.qmp_path)

    def boot_id(self) -> str:
        return self.check("cat /proc/sys/kernel/random/boot_id").strip()

    def wait_reboot(self, old_boot_id: str, timeout: float) -> float:
        """Wait (bounded) until the agent answers from a boot other than ``old_boot_id`` (the
        guest rebooted by itself: QEMU and the agent connection stay); seconds taken."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            reply = self._request(
                {"cmd": "cat /proc/sys/kernel/random/boot_id", "timeout": 5}, wait=3.0, quiet=True
            )
            if reply is not None and reply.get("rc") == 0 and reply["out"].strip() != old_boot_id:
                return time.monotonic() - t0
            time.sleep(1.0)
        raise self.stuck(f"the VM did not come back from a reboot within {timeout:.0f} s")

    def kill(self) -> None:
        """Power cut: QEMU killed at once (the disk overlay keeps what reached it)."""
        self._disconnect()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def _disconnect(self) -> None:
        """The agent's and QMP's connections closed."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None

    def _check_alive(self) -> None:
        """Raise if QEMU ended, unless the guest reset an EFI machine: then start it again
        (see :meth:`_launch`); the callers' loops go on asking the new boot's agent."""
        assert self.process is not None
        if self.process.poll() is None:
            return
        events = self.qmp.drain() if self.qmp is not None else []
        reset = any(
            e["event"] == "SHUTDOWN" and e.get("data", {}).get("reason") == "guest-reset"
            for e in events
        )
        if not (self.efi and reset and self.process.returncode == 0):
            raise self._exited()
        self._disconnect()
        self.cold_starts += 1
        print(f"appliance: guest reset -> QEMU started again (cold start {self.cold_starts})")
        self._launch()

    def _exited(self) -> VmError:
        assert self.process is not None
        err = self.process.stderr.read().decode() if self.process.stderr else ""
        return VmError(f"QEMU exited with {self.process.returncode}: {err}\n{self.tail()}")

    def qemu_status(self) -> str:
        """QEMU's run state, asked by QMP: "running", "io-error" (paused on a disk error),
        "internal-error", ...; or why it could not be asked."""
        if self.qmp is None:
            return "unknown (no QMP connection)"
        try:
            return str(self.qmp.call("query-status")["status"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"unknown ({err})"

    def stuck(self, what: str) -> VmError:
        """The error for a guest that stopped answering: ``what``, QEMU's run state and the
        host's free disk (a full disk pauses the guest), and the console's last lines."""
        status = self.qemu_status()
        free = shutil.disk_usage(self.workdir).free / 2**30
        cause = (
            " (paused on a disk error: is the host's disk full?)" if status == "io-error" else ""
        )
        return VmError(
            f"{what}\nQEMU: {status}{cause}; {free:.1f} GiB free in {self.workdir}\n{self.tail(60)}"
        )

    def discard_disk(self) -> None:
        """The disk overlay and firmware variables deleted (the console log stays)."""
        for name in ("disk.qcow2", "OVMF_VARS.fd"):
            (self.workdir / name).unlink(missing_ok=True)

    def tail(self, lines: int = 40) -> str:
        text = self.console.read_text(errors="replace") if self.console.exists() else ""
        return "console (last lines):\n" + "\n".join(text.splitlines()[-lines:])

    def _request(
        self, request: dict[str, Any], wait: float, quiet: bool = False
    ) -> dict[str, Any] | None:
        assert self.sock is not None
        # A probe (quiet: while the guest boots) is asked again every few seconds, but while the
        # guest's port is closed QEMU reads nothing, and a Unix socket takes only ~70 small
        # messages: a slow boot would block the send. So a probe is sent only while the socket
        # has room, and the answer to any earlier probe of the same command counts.
        probes = self._probes.setdefault(request["cmd"], set()) if quiet else set()
        if not quiet or select.select([], [self.sock], [], 0)[1]:
            self._next_id += 1
            probes.add(self._next_id)
            # bounded: the socket is full when the guest has not read for long (a hung guest)
            self.sock.settimeout(wait)
            try:
                self.sock.sendall((json.dumps({**request, "id": self._next_id}) + "\n").encode())
            except TimeoutError:
                raise self.stuck(
                    f"the VM's agent took no request for {wait:.0f} s: {request}"
                ) from None
            except (BrokenPipeError, ConnectionResetError):
                return self._connection_ended(request, quiet)
        wanted = probes if quiet else {self._next_id}
        deadline = time.monotonic() + wait
        while True:
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                reply = json.loads(line)
                if reply.get("id") in wanted:
                    wanted.discard(reply["id"])  # a probe's caller judges the answer (boot id)
                    return dict(reply)
            left = deadline - time.monotonic()
            if left <= 0:
                if quiet:
                    return None
                raise self.stuck(f"no answer from the VM's agent within {wait:.0f} s: {request}")
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                before = self.cold_starts
                self._check_alive()
                if self.cold_starts != before:  # the guest reset: this request went with it
                    return self._connection_ended(request, quiet, restarted=True)
                continue
            except ConnectionResetError:  # QEMU ended with our probes unread
                chunk = b""
            if not chunk:
                return self._connection_ended(request, quiet)
            self._buf += chunk

    def _connection_ended(
        self, request: dict[str, Any], quiet: bool, restarted: bool = False
    ) -> None:
        """The agent's connection ended with QEMU. After a guest reset of an EFI machine
        (started again by :meth:`_check_alive`; ``restarted``: already) a probe goes unanswered
        (None: its caller asks the new boot); a command raises, as does any other end."""
        if not restarted:
            assert self.process is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)  # the socket may close just before the process ends
            if self.process.poll() is None:
                raise VmError(f"the agent connection closed, QEMU still running\n{self.tail()}")
            self._check_alive()  # raises, unless it started the machine again
        if quiet:
            return None
        raise VmError(f"the guest reset while the agent ran {request}\n{self.tail()}")

    def run(self, cmd: str, timeout: float = 60.0) -> CommandResult:
        """Run ``cmd`` (bash, as root) in the VM; killed in the VM after ``timeout`` (rc -9)."""
        reply = self._request({"cmd": cmd, "timeout": timeout}, wait=timeout + 30.0)
        assert reply is not None
        return CommandResult(reply["rc"], reply["out"], reply["err"], reply["seconds"])

    def check(self, cmd: str, timeout: float = 60.0) -> str:
        """Run ``cmd`` and fail the test unless it exits 0; its standard output."""
        result = self.run(cmd, timeout)
        assert result.rc == 0, f"{cmd}\n{result}"
        return result.out

    def wait_for(self, cmd: str, timeout: float, what: str) -> float:
        """Run ``cmd`` in the VM until it exits 0 (a bounded loop inside the VM); seconds taken."""
        script = (
            f"end=$((SECONDS+{int(timeout)})); until {cmd}; do "
            "[ $SECONDS -ge $end ] && { echo timed out; exit 1; }; "
            "sleep 0.2; done"
        )
        result = self.run(script, timeout + 10)
        assert result.rc == 0, f"{what}: {result}"
        return result.seconds

    def start_sim(self, name: str, *args: str, netns: str | None = None) -> str:
        """``vci sim ARGS`` in the background in the VM (in network namespace ``netns``), its
        output in /tmp/sim-NAME.log; waits for its ready line and returns it."""
        logfile = f"/tmp/sim-{name}.log"
        prefix = f"ip netns exec {netns} " if netns else ""
        self.check(
            f"{prefix}setsid {VCI} sim {' '.join(shlex.quote(a) for a in args)} "
            f">{logfile} 2>&1 </dev/null & echo $! >/tmp/sim-{name}.pid"
        )
        self.wait_for(f"grep -q 'vci-sim ready' {logfile}", 60, f"vci sim {name} ready")
        ready = self.check(f"grep 'vci-sim ready' {logfile}").strip()
        self.started.append(f"/tmp/sim-{name}.pid")
        return ready

    def stop_sims(self) -> None:
        for pidfile in self.started:
            self.run(f"kill $(cat {pidfile}) 2>/dev/null; rm -f {pidfile}")
        self.started.clear()

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        yield
        record(name, time.monotonic() - t0)

    def stop(self) -> None:
        self._disconnect()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def build_image() -> Path:
    """Build the test image with image/build (or reuse the cached one); its manifest.json."""
    tools = (
        "mmdebstrap",
        "qemu-system-x86_64",
        "qemu-img",
        "mkfs.ext4",
        "sfdisk",
        "mkfs.vfat",
        "mcopy",
        "grub-mkstandalone",
        "grub-editenv",
        "rauc",
        "mksquashfs",
    )
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise VmError(
            f"the appliance test needs {', '.join(missing)}: run scripts/setup-env as root"
        )
    keys = release_keys()
    cmd = [sys.executable, str(REPO / "image/build"), "--test-agent", "--keyring",
           str(keys / "ca.pem")]  # fmt: skip
    if os.geteuid() != 0:
        cmd = ["sudo", "-n", *cmd]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    sys.stdout.write(result.stdout)
    if result.returncode != 0:
        raise VmError(f"image/build failed:\n{result.stdout}\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


def appliance_cache() -> Path:
    return Path(os.environ.get("VCI_APPLIANCE_CACHE", "~/.cache/vci-appliance")).expanduser()


def release_keys() -> Path:
    """A TEST release CA (ca.pem: the image's keyring) with a signing certificate and key
    (release.pem, release.key), and a second CA's signer that the box must refuse (other.pem,
    other.key); made once with openssl and kept in the cache (the image's hash includes the
    keyring, so new keys mean a new image). Never a real release key."""
    keys = appliance_cache() / "test-release"
    if (keys / "other.key").exists():
        return keys
    keys.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=keys)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (keys / "signer.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n")
    for ca, signer in (("ca", "release"), ("other-ca", "other")):
        openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days",
                "3650", "-subj", f"/CN=VCI TEST {ca} (not a real release key)",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
        openssl("req", *ec, "-keyout", f"{signer}.key", "-out", f"{signer}.csr", "-subj",
                f"/CN=VCI TEST {signer} signer")  # fmt: skip
        openssl("x509", "-req", "-in", f"{signer}.csr", "-CA", f"{ca}.pem", "-CAkey",
                f"{ca}.key", "-CAcreateserial", "-out", f"{signer}.pem", "-days", "3650",
                "-extfile", "signer.ext")  # fmt: skip
    return keys


@pytest.fixture(scope="session")
def appliance_image() -> Path:
    """The test image's manifest.json (image/build, cached by the hash of its inputs)."""
    t0 = time.monotonic()
    try:
        manifest = build_image()
    except VmError as err:
        pytest.fail(str(err))
    record("image build (image/build --test-agent; cached when unchanged)", time.monotonic() - t0)
    return manifest


@contextlib.contextmanager
def running(machine: Vm, what: str) -> Iterator[Vm]:
    """``machine`` booted (its boot time recorded as ``what``), stopped at the end; a VM that
    does not answer fails the test with its console's last lines."""
    try:
        record(what, machine.start())
        RUNNING.append(machine)
        yield machine
    except VmError as err:
        pytest.fail(f"{err}\n{machine.tail()}")
    finally:
        RUNNING.clear()
        machine.stop()
        machine.discard_disk()  # gigabytes after an update test; the console log stays


@pytest.fixture(scope="session")
def vm(appliance_image: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vm]:
    machine = Vm(appliance_image, tmp_path_factory.mktemp("vm"))
    with running(machine, f"boot to the test agent (QEMU {qemu_accel()})"):
        yield machine


def put(vm: Vm, path: str, data: bytes, mode: str = "0644") -> None:
    """A file into the VM through the agent (base64 in chunks: the agent's line is bounded)."""
    encoded = base64.b64encode(data).decode()
    vm.check(f"rm -f {path}.b64")
    for i in range(0, len(encoded), 48_000):
        vm.check(f"printf %s {encoded[i : i + 48_000]} >> {path}.b64")
    vm.check(f"base64 -d {path}.b64 > {path} && rm {path}.b64 && chmod {mode} {path}")


REBOOT_TIMEOUT = 300.0
"""a reboot through OVMF and GRUB to the agent: about 50 s under TCG on 2 cores"""
HEALTH_TIMEOUT = 300.0


def rauc_status(vm: Vm) -> dict[str, dict[str, str]]:
    """{bootname: {state, boot_status, version}} and "_" for booted / primary."""
    data = json.loads(vm.check("rauc status --detailed --output-format=json"))
    out: dict[str, dict[str, str]] = {"_": {"booted": data["booted"], "primary": ""}}
    for entry in data["slots"]:
        for name, info in entry.items():
            bundle = (info.get("slot_status") or {}).get("bundle") or {}
            out[info["bootname"]] = {
                "state": info["state"],
                "boot_status": info["boot_status"],
                "version": bundle.get("version", ""),
            }
            if name == data.get("boot_primary"):
                out["_"]["primary"] = info["bootname"]
    return out


def wait_healthy(vm: Vm) -> None:
    vm.wait_for("systemctl is-active -q vci-health.service", HEALTH_TIMEOUT, "vci-health done")


def version(vm: Vm) -> str:
    return vm.check("cat /etc/vci/release").strip()


def reboot(vm: Vm) -> float:
    old = vm.boot_id()
    vm.run("systemctl reboot", 10)
    return vm.wait_reboot(old, REBOOT_TIMEOUT)


CAR_ADDRESS = "169.254.23.5"
"""the car's Auto-IP address (ISO 13400-2: a vehicle with no DHCP server answering picks one)"""


@pytest.fixture(scope="module")
def enet_vm(vm: Vm) -> Iterator[Vm]:
    """The car's Ethernet: a veth pair, the box's end as eth0 (set up by the image's
    systemd-networkd file: DHCP and IPv4 link-local, no default route), the other end in the
    network namespace ``car`` at CAR_ADDRESS, where tests start ``vci sim``."""
    vm.check(
        "ip netns add car && ip link add eth0 type veth peer name enet "
        "&& ip link set enet netns car && ip -n car link set lo up "
        f"&& ip -n car addr add {CAR_ADDRESS}/16 dev enet && ip -n car link set enet up"
    )
    with vm.timed("check: eth0 gets an IPv4 link-local address (systemd-networkd)"):
        vm.wait_for(
            "ip -4 -o addr show dev eth0 | grep -q 'inet 169\\.254\\.'", 60, "eth0 link-local"
        )
    yield vm
    vm.stop_sims()
    vm.run("ip netns pids car | xargs -r kill; ip link del eth0; ip netns del car")
