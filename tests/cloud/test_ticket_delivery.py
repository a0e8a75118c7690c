"""A ticket bought on the portal reaches its box over the broker link, through a broker outage,
once; its revocation likewise; a ticket the box refuses shows the refusal at the portal (real
mosquitto, a real ``vci gateway`` process, the portal's database on SQLite)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.cloud import topics
from firmware_py.cloud.schema import Message
from portal import boxes, keys
from portal.accounts import Actor
from portal.credit import buy_ticket
from portal.db.models import Delivery
from portal.delivery import DeliveryWorker, Revocation, describe, revoke_purchase
from portal.remote import RemoteSession
from portal.tickets import RevocationList
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
from tests.portal.web_client import PortalFarm

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
        with factory() as db, db.begin():  # the workshop's second box
            boxes.record_claim(db, shop["owner"], shop["owner"].workshop_id, OTHER_BOX)
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
        revoke_purchase(factory, shop["operator"], bought)
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


def _many_deliveries(shop: dict[str, Any], count: int) -> None:
    """``count`` pending ticket deliveries to BOX (one purchase's, queued again: the rows are
    what the workers share, not the tickets)."""
    bought = _buy(shop)
    with shop["factory"]() as db, db.begin():
        db.add_all(
            Delivery(purchase_id=bought, device=BOX, kind="ticket", state="pending", attempts=0,
                     next_attempt_at=0, created_at=0)
            for _ in range(count - 1)
        )  # fmt: skip


@pytest.mark.parametrize("portal_db", ["sqlite", "postgresql"], indirect=True)
def test_two_delivery_workers_send_each_due_delivery_once(
    box: Any, broker: dict[str, Any], shop: dict[str, Any]
) -> None:
    """Two portal processes each run a delivery worker on one database: stepping at the same
    moment, they share the due deliveries out (rows locked, SKIP LOCKED on PostgreSQL; one writer
    at a time on SQLite); none goes twice, none is left."""
    factory = shop["factory"]
    _many_deliveries(shop, 100)  # two batches (BATCH = 50)
    sessions = [RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER) for _ in range(2)]
    workers = [DeliveryWorker(factory, s, shop["revocation"]) for s in sessions]
    try:
        for s in sessions:
            wait_until(s.client.is_connected, 10, "the worker's broker connection")
        now = time.time()
        barrier = threading.Barrier(2)
        sent: list[int] = []

        def step(worker: DeliveryWorker) -> None:
            barrier.wait(timeout=10)
            sent.append(worker.step(now))

        threads = [threading.Thread(target=step, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        with factory() as db:
            attempts = [d.attempts for d in db.query(Delivery)]
        assert len(sent) == 2 and sum(sent) == 100, sent
        assert attempts == [1] * 100  # each sent once: its attempt counted once
    finally:
        for s in sessions:
            s.close()


@pytest.mark.parametrize("portal_db", ["postgresql"], indirect=True)
def test_answers_both_workers_hear_count_once(
    box: Any, broker: dict[str, Any], shop: dict[str, Any]
) -> None:
    """Both processes' workers hear the box's answers on the portal user's response topic. When
    two answers to one delivery (the box's acknowledgement of it and a refusal of its
    redelivery, say) are taken at the same moment by the two workers, the first to commit
    decides and the other counts nothing, as in one process (PostgreSQL, READ COMMITTED: both
    read "pending" before either writes)."""
    from sqlalchemy import func, select, text

    factory = shop["factory"]
    bought = _buy(shop)
    sessions = [RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER) for _ in range(2)]
    workers = [DeliveryWorker(factory, s, shop["revocation"]) for s in sessions]
    with factory() as db:
        delivery_id = db.scalar(select(Delivery.id).where(Delivery.purchase_id == bought))
    topic = topics.responses(BOX, USER)  # the box's answers, as the broker hands them to both
    sessions[0].inbox.put((topic, Message("ticket.ack", {"delivery": delivery_id, "ok": True})))
    refused = {"delivery": delivery_id, "ok": False, "error": {"message": "revoked"}}
    sessions[1].inbox.put((topic, Message("ticket.ack", refused)))
    counted: dict[int, int] = {}
    try:
        with factory() as holder, holder.begin():  # the row is busy while both take their answer
            holder.execute(select(Delivery).where(Delivery.id == delivery_id).with_for_update())
            threads = [
                threading.Thread(target=lambda n=n: counted.update({n: workers[n].take_answers()}))
                for n in range(2)
            ]
            for thread in threads:
                thread.start()
            waiting = text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )

            def both_waiting() -> bool:
                # a fresh transaction per look: pg_stat_activity is a snapshot taken once per
                # transaction, so polling inside one would see the first answer for ever
                with factory() as watcher:
                    return bool(watcher.execute(waiting).scalar_one() == 2)

            wait_until(both_waiting, 10, "both workers waiting for the delivery's row")
        for thread in threads:
            thread.join(timeout=10)
        with factory() as db:
            state = db.scalar(select(Delivery.state).where(Delivery.id == delivery_id))
            assert db.scalar(select(func.count()).select_from(Delivery)) == 1
        assert sorted(counted.values()) == [0, 1], counted
        # the answer that counted decided: worker 0 took the acknowledgement, 1 the refusal
        assert state == ("delivered" if counted[0] else "refused"), (counted, state)
    finally:
        for s in sessions:
            s.close()


@pytest.mark.parametrize("portal_db", ["postgresql"], indirect=True)
def test_two_portal_processes_with_the_broker_deliver_every_ticket(
    box: Any, broker: dict[str, Any], shop: dict[str, Any], portal_db: str, tmp_path: Path
) -> None:
    """Two ``vci-portal serve --broker`` on one PostgreSQL and one mosquitto, each running the
    delivery worker: every ticket bought reaches the box and is acknowledged, once."""
    farm = PortalFarm(tmp_path / "farm", portal_db, key_dir=box.keys_dir)
    gateway = start_gateway_process([], gateway_env(box, broker))
    watcher = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    try:
        wait_online(watcher, BOX)
        for _ in range(2):
            farm.start("--broker", f"127.0.0.1:{broker['port']}", "--pki", str(broker["pki"]),
                       "--broker-user", USER)  # fmt: skip
        bought = [_buy(shop) for _ in range(6)]
        wait_until(
            lambda: all(
                _deliveries(shop["factory"], p) == [("ticket", "delivered")] for p in bought
            ),
            30,
            "every ticket acknowledged by the box",
        )
        tickets = _box_tickets(box)
        assert len(tickets) == 6 and {t["state"] for t in tickets} == {"valid"}, tickets
        logs = [(tmp_path / "farm" / f"portal-{n}" / "serve.log").read_text() for n in (1, 2)]
        assert not any("Traceback" in log for log in logs), logs
    finally:
        farm.close()
        watcher.close()
        gateway.stop()


@pytest.mark.parametrize("portal_db", ["postgresql"], indirect=True)
def test_a_revocation_made_on_one_portal_machine_is_sent_by_the_others_worker(
    box: Any, broker: dict[str, Any], shop: dict[str, Any], portal_db: str, tmp_path: Path
) -> None:
    """Two portal machines share the database and the signing key (a copy each), not a disk:
    the operator revokes a purchase on machine A (``vci-portal ticket revoke``), machine B's
    delivery worker sends the list, and on the box the ticket is revoked."""
    machine_b = tmp_path / "machine-b-keys"
    shutil.copytree(box.keys_dir, machine_b)
    factory = shop["factory"]
    bought = _buy(shop)
    gateway = start_gateway_process([], gateway_env(box, broker))
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    kid, key = keys.load_signing_key(machine_b)
    worker = DeliveryWorker(factory, session, Revocation(RevocationList(machine_b), kid, key))
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop, 0.2), daemon=True)
    try:
        wait_online(session, BOX)
        runner.start()
        wait_until(lambda: _deliveries(factory, bought) == [("ticket", "delivered")], 30, "ticket")
        done = portal(
            "ticket", "revoke", str(bought), "--user", "ops@portal.example", "--db", portal_db,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        wait_until(
            lambda: _deliveries(factory, bought)[-1] == ("revocation", "delivered"),
            20,
            "the revocation list acknowledged",
        )
        assert [t["state"] for t in _box_tickets(box)] == ["revoked"]
    finally:
        stop.set()
        if runner.is_alive():
            runner.join(timeout=10)
        session.close()
        gateway.stop()
