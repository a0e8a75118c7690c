"""``vci-portal privacy export|erase --vin``: one vehicle's data on its owner's request, in the
portal's database (portal/vehicle_data.py) and in its records file (portal/privacy.py), whichever
of them is there (docs/data-protection.md)."""

from __future__ import annotations

import argparse
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

from firmware_py.errors import ConfigError, NotPermitted
from firmware_py.gateway.privacy import normalise_vin

DEFAULT_RECORDS = Path("portal-records.sqlite")


def _records(args: argparse.Namespace) -> Any:
    from portal.records import RecordStore

    path = args.records or (DEFAULT_RECORDS if DEFAULT_RECORDS.exists() else None)
    return RecordStore(path) if path is not None else None


def _database(args: argparse.Namespace) -> tuple[Any, Any] | None:
    """(engine, session factory) of the portal's database, if there is one."""
    from portal.db.engine import database_url, open_database, state_dir

    if (
        not (args.db or os.environ.get("VCI_PORTAL_DB"))
        and not (state_dir() / "portal.sqlite3").exists()
    ):
        return None
    return open_database(database_url(args.db))


def acting_workshop(factory: Any, login: str | None) -> tuple[int | None, str]:
    """(the workshop whose data ``login`` may export and erase, None: every workshop; who)."""
    if login is None:
        return None, "command line"
    from portal.accounts import find_user
    from portal.db.models import Role

    with factory() as session:
        user = find_user(session, login)
        if user is None:
            raise NotPermitted(f"there is no user {login!r}", hint="vci-portal user add")
        if user.role == Role.OPERATOR.value:
            return None, user.login
        if user.role != Role.OWNER.value:
            raise NotPermitted("only the workshop's owner or an operator may do this",
                               hint="Ask the workshop's owner")  # fmt: skip
        return user.workshop_id, user.login


def run(args: argparse.Namespace) -> int:
    vin = normalise_vin(args.vin)
    records, database = _records(args), _database(args)
    if records is None and database is None:
        raise ConfigError(
            "there is neither a portal database nor a records file here",
            hint="Give --db URL and/or --records FILE",
        )
    try:
        if args.privacy_command == "export":
            return _export(args, vin, records, database)
        return _erase(args, vin, records, database)
    finally:
        if database is not None:
            database[0].dispose()


def _export(args: argparse.Namespace, vin: str, records: Any, database: Any) -> int:
    from portal import privacy, vehicle_data

    now, said = time.time(), []
    output = args.output or Path(f"vehicle-data-{vin}.zip")
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if records is not None:
            data, files = privacy.export(records, vin, now)
            archive.writestr("vehicle-data.json", json.dumps(data, indent=1, default=str))
            for name, blob in files.items():
                archive.writestr(name, blob)
            said.append(
                f"{len(data['records'])} record(s), {len(data['booklet'])} booklet entr(ies), "
                f"{len(data['helpdesk_requests'])} help-desk request(s)"
            )
        if database is not None:
            workshop, _ = acting_workshop(database[1], args.user)
            with database[1]() as session:
                rows = vehicle_data.export(session, vin, workshop, now)
            archive.writestr("portal-database.json", json.dumps(rows, indent=1, default=str))
            said.append(", ".join(f"{len(r)} {t}" for t, r in rows["tables"].items()) or
                        "nothing in the database")  # fmt: skip
    print(f"{output}: {'; '.join(said)} of {vin}")
    return 0


def _erase(args: argparse.Namespace, vin: str, records: Any, database: Any) -> int:
    from portal import privacy, vehicle_data

    results: dict[str, Any] = {}
    if database is not None:  # checked first: a refused --user erases nothing anywhere
        workshop, who = acting_workshop(database[1], args.user)
        results["database"] = vehicle_data.erase(
            database[1], vin, asked_by=args.by, done_by=who, workshop_id=workshop
        )
    if records is not None:
        results["records"] = privacy.erase(records, vin, f"portal:{args.by}", time.time())
    remaining = [r for part in results.values() for r in part["remaining"]]
    if args.json:
        print(json.dumps(results))
    else:
        for part, result in results.items():
            done = ", ".join(f"{n} {k}" for k, n in result["deleted"].items() if n) or "nothing"
            kept = ", ".join(f"{n} {k}" for k, n in result.get("kept", {}).items() if n)
            print(f"erased {vin} in the {part}: {done}; recorded as {result['vin_hash']}"
                  + (f"; kept by law: {kept}" if kept else ""))  # fmt: skip
    if remaining:
        print("error: the VIN is still named in: " + ", ".join(remaining))
        return 2
    return 0


def register(sub: Any, workshop: Any, with_db: Any) -> None:
    """``vci-portal workshop export|delete`` and ``vci-portal retention run``."""
    e = with_db(workshop.add_parser(
        "export", help="all of a workshop's data as one archive (its owner, or an operator)"))  # fmt: skip
    e.add_argument("workshop", help="its id or VAT id")
    e.add_argument("--user", required=True, help="the workshop's owner or an operator")
    e.add_argument("-o", "--output", type=Path, help="default workshop-data-<id>.zip")
    e.add_argument("--records", type=Path, help="with what its boxes sent: the portal's records "
                   "file (the console's --records)")  # fmt: skip
    e.set_defaults(account_handler=_workshop_export)
    d = with_db(workshop.add_parser(
        "delete", help="delete a workshop's account; what the law keeps is kept (operator)",
        description="Deletes the account (docs/data-protection.md): kept are the workshop's "
        "name, address and VAT id, its purchases, bookings and invoices (10 years, §147 AO, "
        "§14b UStG), revocations and erasure records; the users are anonymised, everything "
        "else is deleted, its boxes are revoked (with --pki on the broker's list)."))  # fmt: skip
    d.add_argument("workshop", help="its id or VAT id")
    d.add_argument("--user", required=True, help="the operator's login")
    d.add_argument("--confirm", required=True, help="the workshop's VAT id again")
    d.add_argument("--pki", type=Path, help="the broker's CA directory: revoke the boxes there")
    d.set_defaults(account_handler=_workshop_delete)
    r = sub.add_parser("retention", help="the portal database's retention periods")
    rr = with_db(r.add_subparsers(dest="retention_command", required=True, metavar="ACTION")
                 .add_parser("run", help="delete what is past its period now (serve does it "
                             "hourly)"))  # fmt: skip
    rr.add_argument("--config", type=Path, help="[retention] file (default: <state>/portal.toml)")
    rr.set_defaults(account_handler=_retention)


def _open(args: argparse.Namespace) -> Any:
    from portal.db.engine import database_url, open_database

    return open_database(database_url(args.db))[1]


def _workshop_export(args: argparse.Namespace) -> None:
    from portal import workshop_data
    from portal.account_cli import _actor, _workshop_id
    from portal.records import RecordStore

    if args.records is not None and not args.records.exists():
        raise ConfigError(f"{args.records} does not exist", hint="Give the console's --records")
    records = RecordStore(args.records) if args.records is not None else None
    with _open(args)() as session:
        actor, workshop = _actor(session, args.user), _workshop_id(session, args.workshop)
        blob = workshop_data.export(session, actor, workshop, time.time(), records)
    output = args.output or Path(f"workshop-data-{workshop}.zip")
    output.write_bytes(blob)
    print(f"{output}: the data of workshop {workshop}")


def _workshop_delete(args: argparse.Namespace) -> None:
    from portal import workshop_data
    from portal.account_cli import _actor, _workshop_id
    from portal.accounts import require_operator
    from portal.db.models import Workshop

    factory = _open(args)
    with factory() as session:
        actor, workshop = _actor(session, args.user), _workshop_id(session, args.workshop)
        require_operator(actor)
        row = session.get(Workshop, workshop)
        if row is None or args.confirm.replace(" ", "").upper() != row.vat_id:
            raise ConfigError("--confirm is not the workshop's VAT id", hint="Check the workshop")
    done = workshop_data.delete_account(
        factory, actor, workshop, revoke_box=workshop_data.pki_revoker(factory, args.pki)
    )
    print(f"workshop {workshop} deleted: " + ", ".join(
        f"{n} {k}" for k, n in done["deleted"].items() if n))  # fmt: skip
    print(f"boxes revoked: {', '.join(done['boxes_revoked']) or 'none'}")
    if done["unlisted"]:
        print("not on the broker's revocation list (no --pki): " + ", ".join(done["unlisted"]))
    print(done["kept"])


def _retention(args: argparse.Namespace) -> None:
    from portal.db.engine import state_dir
    from portal.retention import RetentionConfig, apply

    config = RetentionConfig.load(args.config or state_dir() / "portal.toml")
    done = apply(_open(args), config)
    print("deleted: " + (", ".join(f"{n} {k}" for k, n in done.items() if n) or "nothing"))
