"""A real mosquitto on loopback with TLS, client certificates and the ACL of broker/ (test PKI made
here), the portal's WebSocket bridge, and ``vci gateway`` processes linked to them. The services
themselves are started by tests/cloud/portal_services.py (shared with the appliance VM's test)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.portal_services import (
    BOX,
    BRIDGE,
    COLLEAGUE,
    HAVE_MOSQUITTO,
    MOSQUITTO,
    OTHER_BOX,
    OTHER_USER,
    REPO,
    USER,
    EnrolPortal,
    portal,
    running_broker,
    running_enrol_portal,
    wait_online,
    wait_port,
)
from tests.conftest import START_TIMEOUT, ProcessOutput, free_port, stop_process
from tests.portal.conftest import pg_cluster

__all__ = [
    "BOX", "BRIDGE", "COLLEAGUE", "HAVE_MOSQUITTO", "MOSQUITTO", "OTHER_BOX", "OTHER_USER",
    "REPO", "USER", "EnrolPortal", "portal", "wait_online", "wait_port", "free_port", "pg_cluster",
]  # fmt: skip


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with running_broker(tmp_path / "pki") as running:
        yield running


def gateway_env(box: Any, broker: dict[str, Any], **cloud: str) -> dict[str, str]:
    """Environment of a ``vci gateway`` for box-test-0001 with the portal link (``cloud``:
    more ``[cloud]`` settings, e.g. ``transport="websocket"``)."""
    d = broker["pki"]
    env = {
        **os.environ,
        "VCI_CONFIG": str(box.config),
        "VCI_CLOUD_BROKER_HOST": "127.0.0.1",
        "VCI_CLOUD_BROKER_PORT": str(broker["port"]),
        "VCI_CLOUD_CA_FILE": str(d / "ca.pem"),
        "VCI_CLOUD_CERT_FILE": str(d / f"{BOX}.pem"),
        "VCI_CLOUD_KEY_FILE": str(d / f"{BOX}.key"),
    }
    env.update({f"VCI_CLOUD_{k.upper()}": v for k, v in cloud.items()})
    return env


stop = stop_process
"""stops a portal-side process (broker, bridge, console)"""


@pytest.fixture
def enrol_portal(broker: dict[str, Any], tmp_path: Path) -> Iterator[EnrolPortal]:
    db = tmp_path / "portal-boxes.sqlite"
    with running_enrol_portal(broker["pki"], db, tmp_path / "enrol.log") as running:
        yield running


def enrolling_env(box: Any, broker: dict[str, Any], enrol: EnrolPortal) -> dict[str, str]:
    """Environment of a ``vci`` for box-test-0001 that has no certificate yet: it enrols at
    ``enrol`` (asking every second) and then links up with the broker."""
    return {
        **os.environ,
        "VCI_CONFIG": str(box.config),
        "VCI_CLOUD_BROKER_HOST": "127.0.0.1",
        "VCI_CLOUD_BROKER_PORT": str(broker["port"]),
        "VCI_CLOUD_CA_FILE": str(broker["pki"] / "ca.pem"),
        "VCI_CLOUD_ENROL_URL": enrol.url,
        "VCI_CLOUD_ENROL_INTERVAL": "1",
    }


@pytest.fixture
def start_bridge(broker: dict[str, Any]) -> Iterator[Any]:
    """Factory: ``start_bridge(port=None)`` runs ``vci-portal ws-bridge``; returns (process, url)."""
    started: list[subprocess.Popen[str]] = []

    def start(port: int | None = None) -> tuple[subprocess.Popen[str], str]:
        port = port or free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portal.cli",
                "ws-bridge",
                "--listen",
                f"127.0.0.1:{port}",
                "--broker",
                f"127.0.0.1:{broker['port']}",
                "--pki",
                str(broker["pki"]),
            ],
            stdout=subprocess.PIPE,
            stderr=(broker["pki"] / f"bridge-{port}.log").open("w"),
            text=True,
        )
        started.append(proc)
        line = ProcessOutput(proc).wait_for("ws-bridge ready", START_TIMEOUT)
        return proc, line.split()[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            stop(proc)


def flash_package(box: Any, tmp_path: Path, size: int) -> tuple[Path, Path]:
    """A signed EGS package of ``size`` bytes in the box's package folder, and the folder of
    publisher keys the box must trust for it (TEST key, made here)."""
    from firmware_py.keys import load_private_key
    from firmware_py.uds.flash.package import SequenceParams, build_package
    from portal import keys
    from tests.flash.conftest import image

    keys.generate(tmp_path / "publisher", "test-publisher")
    trust = tmp_path / "trust"
    trust.mkdir()
    shutil.copy(tmp_path / "publisher" / "test-publisher.pub", trust)
    kid, key = load_private_key(tmp_path / "publisher" / "test-publisher.key")
    packages = box.root / "state" / "packages"
    packages.mkdir(parents=True, exist_ok=True)
    package = packages / "egs.vcipkg"
    package.write_bytes(
        build_package(
            ecu_name="EGS",
            ecu_address=0x18,
            version="12.05.00",
            segments=[(0x80000, image("12.05.00", size))],
            key=key,
            kid=kid,
            sequence=SequenceParams(max_block_length=0x402),
        )
    )
    return package, trust


@dataclass
class Outage:
    """What a remote flash through an outage saw (see :func:`flash_through_an_outage`)."""

    events: list[Any]
    result: Any
    at_kill: float
    """percent of the flash when the outage began"""
    after: list[float]
    """percents of the events that arrived after it"""


def flash_through_an_outage(
    session: Any, box: Any, package: Path, outage: Callable[[], None]
) -> Outage:
    """Start a remote flash of ``package`` from the portal, call ``outage`` once a fifth of it is
    written (it kills and restarts a part of the link), and wait for the result."""
    import threading

    events: list[Any] = []
    result: list[Any] = []
    ticket = box.issue("basic-1d")

    def run() -> None:
        result.append(
            session.run(
                BOX,
                "programming",
                ecu="EGS",
                params={"package": package.name},  # its id in the box's package store
                ticket=ticket,
                timeout=120,
                on_event=events.append,
            )
        )

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 30
    while (
        not any((e.body.get("percent") or 0) >= 20 for e in events) and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    at_kill = max([(e.body.get("percent") or 0) for e in events] + [0])
    seen_before = len(events)
    outage()
    runner.join(timeout=120)
    assert result, "no result from the box"
    later = [e.body.get("percent") or 0 for e in events[seen_before:]]
    return Outage(events, result[0], at_kill, later)


class BrokerOutage:
    """The ``broker`` fixture's mosquitto, killed (SIGKILL: an outage, not a shutdown) and
    started again on the same port and configuration."""

    def __init__(self, broker: dict[str, Any]) -> None:
        self.broker = broker

    def kill(self) -> None:
        import signal

        proc = self.broker["proc"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def start(self) -> None:
        self.broker["proc"] = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.broker["pki"] / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.broker["port"])


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``condition`` until it is true, at most ``timeout`` seconds; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)
    return value


def tls_handshake(port: int, pki: Path, cert: Path, key: Path) -> str:
    """A TLS handshake with the broker under ``cert``: ``"ok"`` or the error."""
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    ctx.load_cert_chain(str(cert), str(key))
    # TLS 1.2: the broker's verdict on our certificate (its alert) comes within the handshake;
    # with TLS 1.3 it comes after, and a close can overtake it
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 0]))
                answer = tls.recv(4)
                return "ok" if answer[:1] == b"\x20" else f"no CONNACK: {answer!r}"
        except (ssl.SSLError, OSError) as err:
            return str(err)


@pytest.fixture
def portal_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The portal's database: SQLite, or with ``indirect`` parametrisation ``postgresql``."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return str(request.getfixturevalue("pg_cluster").new_database())
    return f"sqlite:///{tmp_path / 'portal.sqlite3'}"


@pytest.fixture
def shop(box: Any, portal_db: str) -> Iterator[dict[str, Any]]:
    """The portal's database with a workshop that has credit and owns box-test-0001 (claimed), its
    owner and an operator, and the box's portal key as the signer (``url``: the database's, for a second portal process)."""
    from portal import accounts, boxes, keys
    from portal.accounts import Actor
    from portal.credit import BankTransfer, Signer
    from portal.db.engine import open_database
    from portal.delivery import Revocation
    from portal.invoices import Seller
    from portal.tickets import RevocationList
    from tests.portal.conftest import FAST_HASHER, PASSWORD, sign_up

    engine, factory = open_database(portal_db, migrate=True)
    owner = sign_up(factory, 1)
    with factory() as session, session.begin():
        user = accounts.add_operator(
            session, login="ops@portal.example", name="Operator", password=PASSWORD,
            hasher=FAST_HASHER,
        )  # fmt: skip
        session.flush()
        operator = Actor.of(user)
    with factory() as session, session.begin():
        BankTransfer().book(session, operator, owner.workshop_id or 0, 500_00, "BANK-1")
        boxes.record_claim(session, owner, owner.workshop_id or 0, BOX)
    kid, key = keys.load_signing_key(box.keys_dir)
    seller = Seller(
        name="VCI Portal GmbH", street="Hauptstr. 1", postcode="80331", city="Muenchen",
        country="DE", vat_id="DE999999999", email="billing@portal.example", iban="DE02120300000000202051",
    )  # fmt: skip
    yield {
        "factory": factory, "owner": owner, "operator": operator, "signer": Signer(kid, key),
        "seller": seller, "revocation": Revocation(RevocationList(box.keys_dir), kid, key),
        "url": portal_db,
    }  # fmt: skip
    engine.dispose()


@pytest.fixture
def remote_shop(box: Any, broker: dict[str, Any], shop: dict[str, Any], start_sim: Any
                ) -> Iterator[dict[str, Any]]:  # fmt: skip
    """The shop's box-test-0001 runs on the simulated car and is online; the portal's broker
    connection (one per process) as the sessions' service."""
    from portal.remote import RemoteSession
    from portal.sessions import SessionService
    from tests.conftest import start_gateway_process

    sim = start_sim("--battery", "13.6")
    gateway = start_gateway_process(sim.cli_args("doip"), gateway_env(box, broker))
    remote = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    try:
        wait_online(remote, BOX)
        yield {**shop, "sim": sim, "broker": broker,
               "sessions": SessionService(shop["factory"], remote)}  # fmt: skip
    finally:
        remote.close()
        gateway.stop()
