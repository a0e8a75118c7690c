"""One vehicle's data in the portal's database (portal/vehicle_data.py), on SQLite and
PostgreSQL: a workshop exports and erases its own rows only, the operator every workshop's; after
the operator's erasure the VIN is named (as text, hex or base64) in no row of any table except the
purchases, bookings and invoices the law keeps, and on SQLite in no byte of the database files;
the erasure is recorded by a keyed hash."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import ConfigError, PreconditionError
from firmware_py.gateway.privacy import vin_forms
from portal import credit, sessions, vehicle_data
from portal.accounts import Actor
from portal.credit import BankTransfer, Signer
from portal.db.models import (
    Base,
    Delivery,
    LoginGuard,
    RemoteJob,
    RemoteJobEvent,
    WorkshopBox,
)
from portal.db.privacy_models import PrivacyErasure
from portal.invoices import Seller
from tests.portal.conftest import NOW, claim, sign_up

VIN, UNBOUGHT = "WBAJA71090B123456", "WBA5R11000FH99999"
KEPT = {"purchases", "bookings", "invoices"}


def _remote_job(db: Session, owner: Actor, device: str, vin: str) -> None:
    """A remote session on ``vin``: its VIN column, a job whose summary names it as text and whose
    result carries the raw answer as hex, an event whose body carries it as base64."""
    remote = sessions.open_session(db, owner, device, now=NOW)
    remote.vin = vin
    raw = "62F190" + vin.encode().hex().upper()
    job = RemoteJob(session_id=remote.id, workshop_id=owner.workshop_id, user_id=owner.user_id,
                    device=device, kind="uds", params="{}", state="done", summary="answered",
                    result=json.dumps({"response": raw}), created_at=NOW)  # fmt: skip
    db.add(job)
    db.flush()
    body = json.dumps({"data": base64.b64encode(b"\x62\xf1\x90" + vin.encode()).decode()})
    db.add(RemoteJobEvent(job_id=job.id, at=NOW, type="job.event", body=body))
    db.add(RemoteJob(session_id=remote.id, workshop_id=owner.workshop_id, user_id=owner.user_id,
                     device=device, kind="identify", params="{}", state="done",
                     summary=f"VIN {vin}, 3 ECUs", created_at=NOW))  # fmt: skip


@pytest.fixture
def world(factory: sessionmaker[Session], signer: Signer, seller: Seller, operator: Actor) -> dict:  # type: ignore[type-arg]
    owners = {n: sign_up(factory, n) for n in (1, 2)}
    for n, owner in owners.items():
        claim(factory, owner, f"box-w{n}")
        with factory() as db, db.begin():
            BankTransfer().book(db, operator, owner.workshop_id or 0, 10_000, f"SEPA-{n}")
    # a ticket bound to the car: its purchase, booking and invoice are kept by law
    bought = credit.buy_ticket(factory, owners[1], owners[1].workshop_id or 0, tariff="basic-9h",
                               device="box-w1", vin=VIN, signer=signer, seller=seller)  # fmt: skip
    with factory() as db, db.begin():
        for n, owner in owners.items():
            _remote_job(db, owner, f"box-w{n}", VIN)
        _remote_job(db, owners[1], "box-w1", UNBOUGHT)
        box = db.scalar(select(WorkshopBox).where(WorkshopBox.device == "box-w1"))
        assert box is not None
        box.vin, box.vehicle = UNBOUGHT, "BMW 5 Series"
        db.add(Delivery(purchase_id=bought.id, device="box-w1", kind="ticket", state="refused",
                        refusal=f"the ticket is for {VIN}", created_at=NOW))  # fmt: skip
        db.add(LoginGuard(login=UNBOUGHT.lower(), failures=1, locked_until=0))  # typed as a login
    return {"owners": owners, "operator": operator}


def naming(factory: sessionmaker[Session], vin: str) -> dict[str, int]:
    """Rows naming ``vin`` per table, read with no help of the module under test: every column
    of every row of every table."""
    forms, found = vin_forms(vin), {}
    with factory() as db:
        for table in Base.metadata.sorted_tables:
            count = 0
            for row in db.execute(select(table)):
                values = [v.encode() if isinstance(v, str) else bytes(v) if isinstance(
                    v, bytes | memoryview) else b"" for v in row]  # fmt: skip
                count += any(f in v for v in values for f in forms)
            if count:
                found[table.name] = count
    return found


def test_vin_erasure_keeps_only_what_the_law_keeps(factory, world, db_url) -> None:  # type: ignore[no-untyped-def]
    owner1, owner2 = world["owners"][1], world["owners"][2]
    before = naming(factory, VIN)
    assert {"remote_sessions", "remote_jobs", "remote_job_events", "deliveries"} <= set(before)
    assert "purchases" in before  # the VIN-bound ticket (its invoice PDF is compressed)

    with factory() as db, db.begin():  # a job on the car still running: refused
        job = db.scalar(select(RemoteJob).where(RemoteJob.kind == "identify").limit(1))
        assert job is not None
        job.state = "running"
    with pytest.raises(PreconditionError):
        vehicle_data.erase(factory, VIN, asked_by="Frau Muster", done_by="owner1")
    assert naming(factory, VIN) == before
    with factory() as db, db.begin():
        db.execute(update(RemoteJob).values(state="done"))
    # the workshop erases its own data: workshop 2's session on the same car stays
    result = vehicle_data.erase(factory, VIN, asked_by="Frau Muster", done_by="owner1",
                                workshop_id=owner1.workshop_id, now=NOW)  # fmt: skip
    assert result["remaining"] == []
    assert result["deleted"]["remote_jobs"] == 2 and result["deleted"]["remote_job_events"] == 1
    with factory() as db:
        left = vehicle_data.find(db, VIN)
        assert {r["workshop_id"] for r in left.rows["remote_sessions"]} == {owner2.workshop_id}
        assert vehicle_data.find(db, VIN, owner1.workshop_id).outside_kept() == []
        assert vehicle_data.find(db, VIN, owner1.workshop_id).rows.keys() <= KEPT
    # the operator erases it everywhere
    result = vehicle_data.erase(factory, VIN, asked_by="Frau Muster", done_by="ops", now=NOW)
    assert result["remaining"] == [] and result["kept"].keys() <= KEPT
    assert set(naming(factory, VIN)) <= KEPT and "purchases" in naming(factory, VIN)
    # the other car's data is untouched, then erased: no row and no byte of the files names it
    assert {"remote_sessions", "workshop_boxes", "login_guards"} <= set(naming(factory, UNBOUGHT))
    result = vehicle_data.erase(factory, UNBOUGHT, asked_by="Herr Beispiel", done_by="ops")
    assert result["remaining"] == [] and naming(factory, UNBOUGHT) == {}
    with factory() as db:
        box = db.scalar(select(WorkshopBox).where(WorkshopBox.device == "box-w1"))
        assert box is not None and (box.vin, box.vehicle) == (None, None)
        records = list(db.scalars(select(PrivacyErasure).order_by(PrivacyErasure.id)))
        assert [r.workshop_id for r in records] == [owner1.workshop_id, None, None]
        assert records[0].vin_hash == records[1].vin_hash == vehicle_data.vin_hash(db, VIN)
        assert records[2].vin_hash != records[0].vin_hash
    if db_url.startswith("sqlite"):
        path = Path(db_url.removeprefix("sqlite:///"))
        for f in (path, path.with_name(path.name + "-wal")):
            data = f.read_bytes() if f.exists() else b""
            assert not any(form in data for form in vin_forms(UNBOUGHT)), f.name


def test_vin_export_is_the_workshops_own(factory, world) -> None:  # type: ignore[no-untyped-def]
    owner1, owner2 = world["owners"][1], world["owners"][2]
    with factory() as db:
        mine = vehicle_data.export(db, VIN.lower(), owner1.workshop_id, NOW)
        everybody = vehicle_data.export(db, VIN, None, NOW)
        with pytest.raises(ConfigError):
            vehicle_data.find(db, "WBAJA7109OB123456")  # an O: not a VIN
    assert mine["vin"] == VIN
    tables = mine["tables"]
    assert {"purchases", "remote_sessions", "remote_jobs", "remote_job_events"} <= set(tables)
    for rows in tables.values():
        for row in rows:
            assert row.get("workshop_id", owner1.workshop_id) == owner1.workshop_id
            assert "ticket" not in row and "password_hash" not in row
    assert "FH99999" not in json.dumps(tables["remote_sessions"])  # the other car's session
    theirs = {r["workshop_id"] for r in everybody["tables"]["remote_sessions"]}
    assert theirs == {owner1.workshop_id, owner2.workshop_id}
    assert "purchases" in mine["kept"]


def test_cli_exports_and_erases_as_the_acting_user(
    factory, world, db_url, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    import zipfile

    from portal.cli import main

    archive = tmp_path / "car.zip"
    assert main(["privacy", "export", "--vin", VIN, "--db", db_url, "--user",
                 "owner2@example.com", "-o", str(archive)]) == 0  # fmt: skip
    with zipfile.ZipFile(archive) as z:
        data = json.loads(z.read("portal-database.json"))
    assert {r["workshop_id"] for r in data["tables"]["remote_sessions"]} == {2}
    assert main(["privacy", "erase", "--vin", VIN, "--by", "Frau Muster", "--db", db_url,
                 "--user", "owner2@example.com"]) == 0  # fmt: skip
    assert "erased WBAJA71090B123456 in the database" in capsys.readouterr().out
    with factory() as db:
        assert {r["workshop_id"] for r in vehicle_data.find(db, VIN).rows["remote_sessions"]} == {1}
    assert main(["privacy", "erase", "--vin", VIN, "--by", "x", "--db", db_url]) == 0
    assert set(naming(factory, VIN)) <= KEPT
