"""A workshop's whole data (portal/workshop_data.py), on SQLite and PostgreSQL: the export holds
every kind of record the schema has for a workshop (every table of portal/workshop_scope.py, so
a new table without an export fails here) and nothing of another workshop; deleting the account
keeps what the law keeps, deletes the rest, ends every login and revokes the boxes."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import LoginRefused, NotPermitted, PreconditionError
from portal import accounts, login, pki, vehicle_data, workshop_data
from portal.accounts import Actor
from portal.db.models import (
    Base,
    ClaimRefusal,
    Delivery,
    EnrolledBox,
    EnrolmentRequest,
    LoginGuard,
    Purchase,
    RemoteJob,
    RevokedTicket,
    TotpSecret,
    User,
    Workshop,
)
from portal.workshop_scope import NOT_A_WORKSHOPS, SCOPES
from tests.portal.conftest import FAST_HASHER, NOW, PASSWORD
from tests.portal.test_vehicle_data import VIN
from tests.portal.test_vehicle_data import world as vehicle_world  # noqa: F401

MARKS = {1: ("Werkstatt 1", "owner1@example.com", "box-w1", "DE100000001"),
         2: ("Werkstatt 2", "owner2@example.com", "box-w2", "DE100000002")}  # fmt: skip


@pytest.fixture
def full(factory: sessionmaker[Session], vehicle_world: dict) -> dict:  # type: ignore[type-arg]  # noqa: F811
    """Both workshops with a row in every table a workshop has rows in."""
    owners = vehicle_world["owners"]
    for n, owner in owners.items():
        with factory() as db, db.begin():
            user = db.get(User, owner.user_id)
            assert user is not None
            accounts.add_user(db, owner, owner.workshop_id or 0, login=f"tech{n}@example.com",
                              name=f"Tech {n}", password=PASSWORD, hasher=FAST_HASHER)  # fmt: skip
            db.add(TotpSecret(user_id=user.id, secret="JBSWY3DPEHPK3PXP", last_step=0))
            login.open_session(db, user, now=NOW)
            login.PendingLogins().add(db, user.id)
            db.add(LoginGuard(login=user.login, failures=2, locked_until=0))
            db.add(EnrolledBox(device=f"box-w{n}", state="claimed", certificate="-", key_fp="k",
                               serial=str(1000 + n), claimed_at=NOW))  # fmt: skip
            db.add(EnrolmentRequest(device=f"box-w{n}", key_fp="k", csr="-", proof="p" * 64,
                                    first_seen=NOW, last_seen=NOW))  # fmt: skip
            db.add(ClaimRefusal(device="box-x", workshop_id=owner.workshop_id, wrong_code=True,
                                at=NOW))  # fmt: skip
            purchase = db.scalar(select(Purchase).where(Purchase.workshop_id == owner.workshop_id))
            if purchase is None:  # workshop 2 bought nothing yet in the vehicle world
                continue
            db.add(Delivery(purchase_id=purchase.id, device=f"box-w{n}", kind="revocation",
                            state="pending", created_at=NOW))  # fmt: skip
            db.add(RevokedTicket(ticket_id=purchase.ticket_id, revoked_at=NOW))
    for n, owner in owners.items():  # a VIN erasure each: its record is the workshop's too
        vehicle_data.erase(factory, f"WBA5R11000FH9999{n}", asked_by="x", done_by=f"owner{n}",
                           workshop_id=owner.workshop_id)  # fmt: skip
    return vehicle_world


def test_every_table_is_a_workshops_or_says_why_not() -> None:
    names = {table.name for table in Base.metadata.sorted_tables}
    assert names == set(SCOPES) | set(NOT_A_WORKSHOPS)
    assert not set(SCOPES) & set(NOT_A_WORKSHOPS)
    with_workshop = {t.name for t in Base.metadata.sorted_tables if "workshop_id" in t.c}
    assert with_workshop <= set(SCOPES)
    # and a table that keeps a VIN has a rule for a VIN erasure (erase, clear or keep, and why)
    with_vin = {t.name for t in Base.metadata.sorted_tables if "vin" in t.c}
    assert with_vin <= set(vehicle_data.RULES), with_vin - set(vehicle_data.RULES)


def test_export_has_every_kind_and_nothing_of_another_workshop(factory, full) -> None:  # type: ignore[no-untyped-def]
    owner1 = full["owners"][1]
    with factory() as db:
        blob = workshop_data.export(db, owner1, owner1.workshop_id, NOW)
        with pytest.raises(NotPermitted):
            workshop_data.export(db, full["owners"][2], owner1.workshop_id, NOW)
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        names = set(archive.namelist())
        tables = {n.removesuffix(".json"): json.loads(archive.read(n))
                  for n in names if n.endswith(".json") and n != "README.json"}  # fmt: skip
        pdfs = [n for n in names if n.startswith("invoices/")]
        assert archive.read(pdfs[0]).startswith(b"%PDF")
        text = b"".join(archive.read(n) for n in names if n.endswith(".json")).decode()
    assert set(tables) == set(SCOPES)
    assert [t for t, rows in tables.items() if not rows] == [], "a kind without its records"
    for mark in MARKS[2]:
        assert mark not in text, mark
    assert MARKS[1][1] in text and len(pdfs) == 1
    for secret in ("$argon2", "JBSWY3DPEHPK3PXP", "p" * 64):
        assert secret not in text, secret
    for rows in tables.values():
        for row in rows:
            assert not {"password_hash", "secret", "token_sha256", "csrf_token"} & set(row)


def count_of(db: Session, workshop_id: int) -> dict[str, int]:
    from portal.workshop_scope import scope_of, tables

    return {
        t.name: db.scalar(select(func.count()).select_from(t).where(scope_of(t, workshop_id)))  # type: ignore[arg-type]
        or 0
        for t in tables() if t.name in SCOPES
    }  # fmt: skip


def test_account_deletion_keeps_what_the_law_keeps(factory, full, tmp_path: Path, operator) -> None:  # type: ignore[no-untyped-def]
    owner1, owner2 = full["owners"][1], full["owners"][2]
    pki.make_ca(tmp_path / "pki")
    with factory() as db:
        theirs = count_of(db, owner2.workshop_id)
        before = count_of(db, owner1.workshop_id)
        tech = accounts.find_user(db, "tech1@example.com")
        assert tech is not None
    with pytest.raises(NotPermitted):  # a technician may not
        workshop_data.delete_account(factory, Actor.of(tech), owner1.workshop_id)
    with factory() as db, db.begin():  # a remote job still running: refused, nothing done
        db.execute(update(RemoteJob).where(RemoteJob.workshop_id == owner1.workshop_id)
                   .values(state="running"))  # fmt: skip
    with pytest.raises(PreconditionError):
        workshop_data.delete_account(factory, owner1, owner1.workshop_id)
    with factory() as db, db.begin():
        db.execute(update(RemoteJob).values(state="done"))
        assert count_of(db, owner1.workshop_id) == before
    revoke = workshop_data.pki_revoker(factory, tmp_path / "pki")
    done = workshop_data.delete_account(factory, owner1, owner1.workshop_id, revoke_box=revoke)
    assert done["boxes_revoked"] == ["box-w1"] and done["unlisted"] == []
    assert 1001 in pki.revoked_serials(tmp_path / "pki")
    with factory() as db:
        after = count_of(db, owner1.workshop_id)
        assert count_of(db, owner2.workshop_id) == theirs
        kept = {k for k, v in after.items() if v}
        # by law (bookkeeping, revocations, accountability); the rows of who bought, anonymised
        assert kept == {"workshops", "users", "bookings", "purchases", "invoices",
                        "revoked_tickets", "privacy_erasures"}, after  # fmt: skip
        for name in kept:
            assert after[name] == before[name], name
        workshop = db.get(Workshop, owner1.workshop_id)
        assert workshop is not None and not workshop.enabled and workshop.deleted_at
        users = db.scalars(select(User).where(User.workshop_id == owner1.workshop_id)).all()
        assert all(u.login.endswith("@deleted.invalid") and "1" not in u.name for u in users)
        box = db.get(EnrolledBox, "box-w1")
        assert box is not None and box.state == "revoked"
        with pytest.raises(NotPermitted):
            accounts.set_enabled(db, operator, owner1.workshop_id, True)
    for name in ("owner1@example.com", "tech1@example.com"):
        with factory() as db, pytest.raises(LoginRefused):
            login.authenticate(db, name, PASSWORD, hasher=FAST_HASHER)
    with pytest.raises(NotPermitted):  # once only
        workshop_data.delete_account(factory, operator, owner1.workshop_id)
    assert VIN  # the kept purchase still names its car (kept by law with the invoice)


def test_cli_exports_and_deletes_a_workshop(factory, full, db_url, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from portal.cli import main
    from portal.records import RecordStore
    from tests.portal.test_records_privacy import _request

    records = RecordStore(tmp_path / "records.sqlite")  # what the boxes sent
    _request(records, "r1", VIN, {"bundle.json": b'{"box": 1}'})  # box-1: nobody's box
    for n in (1, 2):
        records.keep(f"box-w{n}", {"id": f"job-{n}", "kind": "job.result", "body": {"n": n}})
        entry = {"id": f"{VIN}-0000{n}", "vin": VIN, "index": n, "date": "2025-01-02",
                 "mileage_km": 1000, "items": ["engine_oil"], "workshop": f"W{n}", "note": ""}  # fmt: skip
        records.keep(f"box-w{n}", {"id": f"b-{n}", "kind": "booklet.entry",
                                   "body": {"vin": VIN, "entry": entry}})  # fmt: skip
    records.db.execute("UPDATE helpdesk_requests SET box = 'box-w1'")
    records.db.execute("UPDATE helpdesk_chunks SET box = 'box-w1'")
    out = tmp_path / "w.zip"
    assert main(["workshop", "export", "DE100000001", "--user", "owner1@example.com",
                 "--db", db_url, "-o", str(out), "--records", str(tmp_path / "records.sqlite")]) == 0  # fmt: skip
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert "remote_job_events.json" in names
        assert "records/helpdesk/box-w1/r1/bundle.json" in names
        sent = {n: json.loads(archive.read(n)) for n in names
                if n.startswith("records/") and n.count("/") == 1}  # fmt: skip
    assert {r["box"] for rows in sent.values() for r in rows} == {"box-w1"}
    assert {n for n, rows in sent.items() if rows} >= {
        "records/records.json", "records/booklet.json", "records/helpdesk_requests.json"}  # fmt: skip
    assert main(["workshop", "export", "1", "--user", "owner2@example.com", "--db", db_url]) == 2
    delete = ["workshop", "delete", "1", "--user", "ops@portal.example", "--db", db_url]
    assert main([*delete, "--confirm", "DE100000002"]) == 2  # another workshop's VAT id
    assert main([*delete, "--confirm", "DE100000001"]) == 0
    printed = capsys.readouterr().out
    assert "workshop 1 deleted" in printed and "not on the broker's revocation list" in printed
    with factory() as db:
        workshop = db.get(Workshop, 1)
        assert workshop is not None and workshop.deleted_at is not None
    assert main(["retention", "run", "--db", db_url, "--config", str(tmp_path / "none")]) == 0
