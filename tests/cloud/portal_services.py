"""The reference portal's services as real processes on loopback, for the host's cloud tests
(tests/cloud/conftest.py) and the appliance VM's portal test (tests/appliance/test_vm_portal.py):
mosquitto with TLS, client certificates, the ACL of broker/ and the revocation list, under a test
PKI made here (``running_broker``); the enrolment endpoint ``vci-portal enrol serve``
(``running_enrol_portal``); ``vci-portal`` commands (``portal``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portal import pki
from portal.broker import user_acl, write_config
from tests.conftest import START_TIMEOUT, ProcessOutput, free_port, stop_process

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
HAVE_MOSQUITTO = os.path.exists(MOSQUITTO)
BOX, OTHER_BOX, USER, OTHER_USER, BRIDGE = (
    "box-test-0001",
    "box-b",
    "portal-alice",
    "portal-bob",
    "ws-bridge",
)
COLLEAGUE = "portal-carol"
"""a second user serving box-test-0001, as portal-alice does"""
REPO = Path(__file__).parents[2]


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def wait_online(session: Any, box: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while session.boxes_online(0.3).get(box) != "online":
        if time.monotonic() > deadline:
            raise TimeoutError(f"box {box} did not come online")


@contextlib.contextmanager
def running_broker(d: Path, hosts: tuple[str, ...] = ()) -> Iterator[dict[str, Any]]:
    """mosquitto on 127.0.0.1 with a new PKI in ``d`` (its server certificate also for
    ``hosts``: the names or addresses boxes reach it by); ``{"port", "pki", "proc"}``."""
    pki.make_ca(d)
    pki.issue(d, "broker", server=True, hosts=hosts)
    for name in (BOX, OTHER_BOX, USER, OTHER_USER, COLLEAGUE, BRIDGE):
        pki.issue(d, name)
    acl = (REPO / "broker" / "acl.example").read_text()
    acl += "\n" + user_acl(OTHER_USER, [OTHER_BOX]) + user_acl(COLLEAGUE, [BOX])
    (d / "acl").write_text(acl)
    port = free_port()
    write_config(d, port)
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(d / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    running: dict[str, Any] = {"port": port, "pki": d, "proc": proc}
    try:
        wait_port(port)
        yield running
    finally:
        # the one running now: a test may have killed and started it again (BrokerOutage)
        running["proc"].terminate()
        running["proc"].wait(timeout=10)


def serve_box(broker: dict[str, Any], user: str, box: str) -> None:
    """Let portal user ``user`` serve ``box`` too (its ACL lines added) and have the broker read
    the ACL again (SIGHUP: between two of its loops)."""
    with (broker["pki"] / "acl").open("a") as acl:
        acl.write("\n" + user_acl(user, [box]))
    broker["proc"].send_signal(signal.SIGHUP)


def portal(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``vci-portal ARGS`` run to its end."""
    return subprocess.run(
        [sys.executable, "-m", "portal.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@dataclass
class EnrolPortal:
    """``vci-portal enrol serve`` on loopback with the broker's PKI, and its SQLite file."""

    url: str
    pki: Path
    db: Path
    port: int

    def box(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``vci-portal box ARGS --pki PKI --db DB``"""
        return portal("box", *args, "--pki", str(self.pki), "--db", str(self.db))

    def wait_waiting(self, device: str, timeout: float = 20) -> None:
        """Until ``device`` has asked to be enrolled (``box list`` shows it waiting)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = self.box("list").stdout.split()
            if device in listed and listed[listed.index(device) + 1] == "waiting":
                return
            time.sleep(0.2)
        raise TimeoutError(f"{device} did not ask to be enrolled")


@contextlib.contextmanager
def running_enrol_portal(pki_dir: Path, db: Path, log: Path) -> Iterator[EnrolPortal]:
    """The enrolment endpoint on 127.0.0.1 (the broker's server certificate), its records in
    ``db``, its log in ``log``."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "enrol", "serve", "--listen", f"127.0.0.1:{port}",
         "--pki", str(pki_dir), "--db", str(db), "--rate", "6000"],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )  # fmt: skip
    try:
        line = ProcessOutput(proc).wait_for("vci-portal enrol ready", START_TIMEOUT)
        yield EnrolPortal(line.split()[-1], pki_dir, db, port)
    finally:
        stop_process(proc)
