"""A ticket bought on the portal reaches its box over the broker link, through a broker outage,
once; its revocation likewise; a ticket the box refuses shows the refusal at the portal (real
mosquitto, a real ``vci gateway`` process, the portal's database on SQLite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from portal.accounts import Actor
from portal.credit import buy_ticket
from portal.db.models import Delivery
from portal.delivery import DeliveryWorker, describe, revoke_purchase
from portal.remote import RemoteSession
from tests.cloud.conftest import (
    BOX,
    HAVE_MOSQUITTO,
    OTHER_BOX,
    USER,
    BrokerOutage,
    gateway_env,
    portal,
    wait_online,
    wait_until,
)
from tests.conftest import start_gateway_process

pytestmark = pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto not installed")


def _buy(shop: dict[str, Any], device: str = BOX, tariff: str = "basic-1d") -> int:
    owner: Actor = shop["owner"]
    purchase = buy_ticket(
        shop["factory"], owner, owner.workshop_id or 0, tariff=tariff, device=device,
        signer=shop["signer"], seller=shop["seller"],
    )  # fmt: skip
    return purchase.id


def _deliveries(factory: sessionmaker[Session], purchase_id: int) -> list[tuple[str, str]]:
    with factory() as session:
        rows = session.query(Delivery).filter_by(purchase_id=purchase_id).order_by(Delivery.id)
        return [(d.kind, d.state) for d in rows]


def _box_tickets(box: Any) -> list[dict[str, Any]]:
    done = box.vci("--json", "ticket", "list")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


@pytest.mark.parametrize("portal_db", ["sqlite", "postgresql"], indirect=True)
def test_a_bought_ticket_reaches_its_box_through_a_broker_outage_once_and_its_revocation_too(
    box: Any, broker: dict[str, Any], shop: dict[str, Any]
) -> None:
    factory = shop["factory"]
    gateway = start_gateway_process([], gateway_env(box, broker))
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    worker = DeliveryWorker(factory, session, shop["revocation"])
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop, 0.2), daemon=True)
    outage = BrokerOutage(broker)
    try:
        wait_online(session, BOX)
        outage.kill()  # the portal's broker is away when the workshop buys
        bought = _buy(shop)
        runner.start()
        assert _deliveries(factory, bought) == [("ticket", "pending")]
        assert _box_tickets(box) == []
        outage.start()
        wait_until(
            lambda: _deliveries(factory, bought) == [("ticket", "delivered")],
            30,
            "the ticket acknowledged by the box after the outage",
        )
        tickets = _box_tickets(box)
        assert [(t["tariff"], t["state"]) for t in tickets] == [("basic-1d", "valid")], tickets

        # its acknowledgement lost, say: delivered again, the box still holds one ticket
        with factory() as db, db.begin():
            db.execute(update(Delivery).values(state="pending", next_attempt_at=0))
        wait_until(
            lambda: _deliveries(factory, bought) == [("ticket", "delivered")], 20, "delivered again"
        )
        assert len(_box_tickets(box)) == 1

        # a ticket for another box, misrouted to this one: refused, and the portal says why
        other = _buy(shop, OTHER_BOX)
        with factory() as db, db.begin():
            db.execute(update(Delivery).where(Delivery.purchase_id == other).values(device=BOX))
        wait_until(
            lambda: _deliveries(factory, other) == [("ticket", "refused")], 20, "the refusal"
        )
        with factory() as db:
            refused = db.query(Delivery).filter_by(purchase_id=other).one()
            assert "ticket is for box 'box-b'" in describe(refused), describe(refused)
        assert len(_box_tickets(box)) == 1

        # revoked at the portal: the list reaches the box, the ticket is no longer usable
        revoke_purchase(factory, shop["operator"], bought, shop["revocation"].revocations)
        wait_until(
            lambda: (
                _deliveries(factory, bought)
                == [("ticket", "delivered"), ("revocation", "delivered")]
            ),
            20,
            "the revocation acknowledged",
        )
        assert [t["state"] for t in _box_tickets(box)] == ["revoked"]
    finally:
        stop.set()
        if runner.is_alive():
            runner.join(timeout=10)
        session.close()
        gateway.stop()
        if broker["proc"].poll() is not None:
            outage.start()  # the fixture stops it


def test_vci_portal_deliver_once_and_serve_send_bought_tickets(
    box: Any, broker: dict[str, Any], shop: dict[str, Any], portal_db: str, tmp_path: Path
) -> None:
    bought = _buy(shop)
    gateway = start_gateway_process([], gateway_env(box, broker))
    watcher = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    try:
        wait_online(watcher, BOX)
        done = portal(
            "deliver", "--once", "--db", portal_db,
            "--broker", f"127.0.0.1:{broker['port']}", "--pki", str(broker["pki"]),
            "--broker-user", USER, "--key-dir", str(box.keys_dir),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "sent 1, still pending 0" in done.stdout, done.stdout
        assert _deliveries(shop["factory"], bought) == [("ticket", "delivered")]
        assert [t["tariff"] for t in _box_tickets(box)] == ["basic-1d"]

        # vci-portal serve with the broker runs the worker beside the pages
        later = _buy(shop)
        env = {**os.environ, "VCI_PORTAL_STATE_DIR": str(tmp_path / "portal-state")}
        server = subprocess.Popen(
            [sys.executable, "-m", "portal.cli", "serve", "--port", "0", "--db", portal_db,
             "--key-dir", str(box.keys_dir), "--broker", f"127.0.0.1:{broker['port']}",
             "--pki", str(broker["pki"]), "--broker-user", USER],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_until(
                lambda: _deliveries(shop["factory"], later) == [("ticket", "delivered")],
                30,
                "the ticket delivered by vci-portal serve",
            )
        finally:
            server.terminate()
            server.wait(timeout=20)
        assert len(_box_tickets(box)) == 2
    finally:
        watcher.close()
        gateway.stop()
