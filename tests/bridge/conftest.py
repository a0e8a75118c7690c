"""The ENET bridge as a workshop meets it: ``vci sim`` in its own process, ``vci gateway`` in its
own process (with a Basic ticket and a paired tablet), and ``vci bridge open`` from the command
line; the tester is a client the project did not write (Scapy)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import GatewayProcess, start_gateway_process, vci


@dataclass
class BridgeBox:
    """A running gateway with its simulator, and what ``vci bridge open`` answered."""

    box: Any
    sim: Any
    gateway: GatewayProcess
    env: dict[str, str]
    opened: dict[str, Any] = field(default_factory=dict)
    tablet: Any = None

    @property
    def page(self) -> str:
        return self.gateway.url

    def vci(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return vci(*args, env=self.env, timeout=timeout)

    def open(self, client: str = "127.0.0.1", *extra: str) -> dict[str, Any]:
        proc = self.vci("--json", "bridge", "open", "--client", client, *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        self.opened = json.loads(proc.stdout)
        return self.opened

    @property
    def ports(self) -> dict[str, int]:
        return dict(self.opened["ports"])

    def state(self) -> dict[str, Any]:
        proc = self.vci("--json", "bridge", "status")
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout))

    def wait_closed(self, timeout: float = 20) -> dict[str, Any]:
        """The finished bridge job (from the admin socket), once it has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.state()["open"]:
                return self.outbox_record("bridge.closed")
            time.sleep(0.1)
        raise TimeoutError("the bridge did not close")

    def outbox(self) -> list[dict[str, Any]]:
        import sqlite3

        db = sqlite3.connect(self.box.root / "state" / "vci.sqlite3")
        try:
            rows = db.execute("SELECT kind, body FROM outbox ORDER BY created").fetchall()
        finally:
            db.close()
        return [{"kind": k, **json.loads(b)} for k, b in rows]

    def session_log(self, event: str) -> list[dict[str, Any]]:
        """The bridge's session-log records of one event (``bridge.opened`` ...)."""
        return [r for r in self.outbox() if r["kind"] == "session_log" and r.get("event") == event]

    def outbox_record(self, event: str, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.session_log(event)
            if found:
                return found[-1]
            time.sleep(0.1)
        raise TimeoutError(f"no {event} record in the outbox")


class Tablet:
    """A paired tablet's HTTP client (its session cookie and CSRF token)."""

    def __init__(self, page: str) -> None:
        import http.cookiejar

        self.page = page
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.csrf = ""

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.page + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Content-Type": "application/json", "X-CSRF-Token": self.csrf},
        )
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


def pair_tablet(page: str, env: dict[str, str]) -> Tablet:
    """Pair a tablet as a workshop does: the page asks, the box's owner approves."""
    tablet = Tablet(page)
    _, asked = tablet.call("POST", "/api/pair", {"name": "workshop tablet"})
    # the tablet asks for its answer (the box's button approves only a tablet that is waiting)
    waiting, _ = tablet.call("POST", f"/api/pair/{asked['id']}/collect", {"claim": asked["claim"]})
    assert waiting == 202
    approve = vci("pair", "--approve", env=env, timeout=30)
    assert approve.returncode == 0, approve.stderr
    status, _ = tablet.call("POST", f"/api/pair/{asked['id']}/collect", {"claim": asked["claim"]})
    assert status == 200
    tablet.csrf = tablet.call("GET", "/api/session")[1]["csrf"]
    return tablet


@pytest.fixture
def bridge_box(box: Any, start_sim: Callable[..., Any]) -> Iterator[Callable[..., BridgeBox]]:
    """Factory: ``bridge_box(transport="doip", sim_args=(), paired=True, ticket=None,
    env_extra=None)`` starts a simulator and a gateway whose bridge listens on free loopback ports; the box has an
    Engineering 1-day ticket (raw erase and download need it), or ``ticket`` (a token) instead."""
    started: list[BridgeBox] = []

    def start(
        transport: str = "doip",
        sim_args: tuple[str, ...] = (),
        paired: bool = True,
        ticket: str | None = None,
        env_extra: dict[str, str] | None = None,
    ) -> BridgeBox:
        added = box.vci("ticket", "add", ticket or box.issue("engineering-1d"))
        assert added.returncode == 0, added.stderr
        sim = start_sim(*sim_args)
        env = {
            **os.environ,
            "VCI_CONFIG": str(box.config),
            "VCI_BRIDGE_LISTEN_HOST": "127.0.0.1",
            "VCI_BRIDGE_HSFZ_PORT": "0",
            "VCI_BRIDGE_HSFZ_CONTROL_PORT": "0",
            "VCI_BRIDGE_DOIP_PORT": "0",
            "VCI_TRANSPORT_DOIP_PORT": str(sim.doip_port),  # the car's ENET: both protocols
            "VCI_TRANSPORT_HSFZ_PORT": str(sim.hsfz_port),
            "VCI_TRANSPORT_HSFZ_CONTROL_PORT": str(sim.hsfz_control_port),
            "PYTHONUNBUFFERED": "1",
            **(env_extra or {}),
        }
        gateway = start_gateway_process(sim.cli_args(transport), env)
        handle = BridgeBox(box, sim, gateway, env)
        started.append(handle)
        if paired:
            handle.tablet = pair_tablet(handle.page, env)
        return handle

    yield start
    for handle in started:
        handle.gateway.stop()
