"""The workshop's boxes on the portal's pages against a real mosquitto and real ``vci gateway``
processes, the pages served by ``vci-portal serve --broker ...`` as a process: the list shows a
box online with its software version and the car the box identified (the box's retained state,
stored by the portal's status watcher), offline when the box stops; a box revoked on the pages is
refused by the broker at its next TLS handshake."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.identity import enrol_proof, label_key, make_identity
from portal import boxes
from portal.accounts import Actor, find_user
from portal.db.engine import open_database
from portal.db.models import WorkshopBox
from portal.enrolment import Enrolment
from portal.remote import RemoteSession
from tests.cloud.conftest import (
    BOX,
    HAVE_MOSQUITTO,
    USER,
    gateway_env,
    tls_handshake,
    wait_online,
    wait_until,
)
from tests.conftest import start_gateway_process
from tests.portal.conftest import PASSWORD, sign_up
from tests.portal.web_client import Browser, served

pytestmark = pytest.mark.skipif(not HAVE_MOSQUITTO, reason="mosquitto not installed")
CODE = "PDKXRTNQ"
VIN = "WBAJA71090B123456"  # the simulator's G30


@pytest.fixture
def shop_db(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """The portal's database (SQLite) with workshop 1 and its owner (owner1@example.com)."""
    url = f"sqlite:///{tmp_path / 'portal.sqlite3'}"
    engine, factory = open_database(url)
    sign_up(factory, 1)
    yield url, factory
    engine.dispose()


def _serve_flags(url: str, broker: dict[str, Any]) -> tuple[str, ...]:
    return ("--db", url, "--broker", f"127.0.0.1:{broker['port']}", "--pki",
            str(broker["pki"]), "--broker-user", USER, "--broker-pid",
            str(broker["proc"].pid))  # fmt: skip


def _row(factory: sessionmaker[Session]) -> WorkshopBox | None:
    with factory() as session:
        return session.scalar(select(WorkshopBox).where(WorkshopBox.device == BOX))


def test_the_box_list_shows_online_software_and_car_from_the_box(
    box: Any, broker: dict[str, Any], start_sim: Any, shop_db: Any, tmp_path: Path
) -> None:
    url, factory = shop_db
    sim = start_sim()
    gateway = start_gateway_process(sim.cli_args("doip"), gateway_env(box, broker))
    technician = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    try:
        with served(tmp_path / "web", *_serve_flags(url, broker)) as base:
            wait_online(technician, BOX)  # the watcher has had the state too: nobody's box yet
            with factory() as session, session.begin():  # claimed now (the claim itself:
                user = find_user(session, "owner1@example.com")  # tests/portal/test_web_boxes)
                assert user is not None and user.workshop_id is not None
                boxes.record_claim(session, Actor.of(user), user.workshop_id, BOX, "Bay 1")
            # the portal's watcher stores the box's retained state: online, its release
            row = wait_until(lambda: (r := _row(factory)) and r.online and r.version and r, 30,
                             "the box's state stored by vci-portal serve")  # fmt: skip
            assert row.vin is None  # no car identified yet
            final = technician.run(BOX, "identify", timeout=60)
            assert final.body["job"]["state"] == "done", final.body
            # the box says so on its state topic at once; the portal stores it
            row = wait_until(lambda: (r := _row(factory)) and r.vin and r, 30, "the car stored")
            assert (row.vin, row.vehicle) == (VIN, "BMW 5 Series Sedan (G30) 530i")

            async def look() -> tuple[str, str]:
                browser = Browser(base)
                try:
                    assert (await browser.log_in("owner1@example.com", PASSWORD)).status == 303
                    return (await browser.get("/boxes")).text, (
                        await browser.get(f"/boxes/{BOX}")
                    ).text
                finally:
                    await browser.close()

            listed, page = asyncio.run(look())
            for text in (listed, page):
                assert "online" in text and VIN in text and "G30" in text
                assert row.version in text
            assert "Bay 1" in listed and "by owner1@example.com" in listed

            gateway.stop()  # the box goes away: its last state says offline
            wait_until(lambda: (r := _row(factory)) and r.online is False, 30, "offline stored")
            listed, _ = asyncio.run(look())
            assert "offline since" in listed and VIN not in listed
    finally:
        technician.close()
        gateway.stop()


def test_a_box_revoked_on_the_pages_is_refused_by_the_broker(
    broker: dict[str, Any], shop_db: Any, tmp_path: Path
) -> None:
    url, factory = shop_db
    from portal import accounts
    from tests.portal.conftest import FAST_HASHER

    with factory() as session, session.begin():
        owner = accounts.find_user(session, "owner1@example.com")
        assert owner is not None and owner.workshop_id is not None
        accounts.add_user(session, accounts.Actor.of(owner), owner.workshop_id,
                          login="tech1@example.com", name="Tech", password=PASSWORD,
                          hasher=FAST_HASHER)  # fmt: skip
    # the box made its key and asked to be enrolled (as vci firstboot and the gateway do)
    state = tmp_path / "box-state"
    csr = make_identity(state, BOX)
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    der = csr.public_bytes(serialization.Encoding.DER)
    proof = enrol_proof(label_key(BOX, CODE), BOX, der)
    enrolment = Enrolment(factory, broker["pki"])
    assert enrolment.request(BOX, pem, proof)["state"] == "pending"

    with served(tmp_path / "web", *_serve_flags(url, broker)) as base:

        async def claim_and_revoke() -> None:
            owner, tech = Browser(base), Browser(base)
            try:
                assert (await owner.log_in("owner1@example.com", PASSWORD)).status == 303
                assert (await tech.log_in("tech1@example.com", PASSWORD)).status == 303
                claimed = await owner.post("/boxes/claim", {"device": BOX, "code": CODE,
                                                            "label": "Bay 1"},
                                           csrf=await owner.csrf("/boxes"))  # fmt: skip
                assert claimed.status == 303, claimed.text
                # the box fetches its certificate and gets in
                issued = enrolment.request(BOX, pem, proof)
                cert = state / "identity" / "box.pem"
                cert.write_text(issued["certificate"])
                key = state / "identity" / "box.key"
                assert tls_handshake(broker["port"], broker["pki"], cert, key) == "ok"
                # a technician may not revoke; the owner must confirm with the device id
                refused = await tech.post(f"/boxes/{BOX}/revoke", {"confirm": BOX},
                                          csrf=await tech.csrf("/boxes"))  # fmt: skip
                assert refused.status == 403
                unconfirmed = await owner.post(f"/boxes/{BOX}/revoke", {"confirm": ""},
                                               csrf=await owner.csrf("/boxes"))  # fmt: skip
                assert unconfirmed.status == 400
                assert tls_handshake(broker["port"], broker["pki"], cert, key) == "ok"
                revoked = await owner.post(f"/boxes/{BOX}/revoke", {"confirm": BOX},
                                           csrf=await owner.csrf("/boxes"))  # fmt: skip
                assert revoked.status == 200 and "refuses it from now on" in revoked.text
                deadline = time.monotonic() + 10  # mosquitto reads the list on SIGHUP
                while (verdict := tls_handshake(broker["port"], broker["pki"], cert, key)) == "ok":
                    assert time.monotonic() < deadline, "the broker still takes the revoked box"
                    await asyncio.sleep(0.1)
                assert "revoked" in verdict
                page = await owner.get(f"/boxes/{BOX}")
                assert "revoked" in page.text and f"/boxes/{BOX}/sessions" not in page.text
                assert "revoked" in (await tech.get("/boxes")).text
            finally:
                await owner.close()
                await tech.close()

        asyncio.run(claim_and_revoke())
    row = _row(factory)
    assert row is not None and row.revoked_at is not None
    assert [b.state for b in enrolment.boxes()] == ["revoked"]
    with pytest.raises(Exception, match="revoked"):
        enrolment.request(BOX, pem, proof)


def test_a_state_that_came_before_the_claim_is_stored_once_the_box_is_claimed(
    box: Any, broker: dict[str, Any], shop_db: Any
) -> None:
    from portal.box_status import BoxStatusWatcher

    _, factory = shop_db
    gateway = start_gateway_process([], gateway_env(box, broker))
    watcher = BoxStatusWatcher(
        factory, RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    )
    try:
        watcher.start()
        wait_until(lambda: watcher.session.status.get(BOX), 30, "the box's state at the watcher")
        assert watcher.step() == 0 and _row(factory) is None  # nobody's box: kept for later
        with factory() as session, session.begin():
            user = find_user(session, "owner1@example.com")
            assert user is not None and user.workshop_id is not None
            boxes.record_claim(session, Actor.of(user), user.workshop_id, BOX)
        assert watcher.step() == 1
        row = _row(factory)
        assert row is not None and row.online and row.version
    finally:
        watcher.session.close()
        gateway.stop()
