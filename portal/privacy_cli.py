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
