"""``vci privacy``: one vehicle's data on a customer's request (docs/data-protection.md).
``export --vin`` writes one archive (the records that name the VIN as JSON, and the traces that
carry it); ``erase --vin`` deletes them and records the erasure (when, a keyed hash of the VIN,
who); ``erasures`` lists those records. Both ask the running gateway over its admin socket, so
that nothing it writes races them; with no gateway running they work on the state directory
directly. The admin socket's routes are :func:`add_admin_routes`."""

from __future__ import annotations

import argparse
import getpass
import json
import time
from pathlib import Path
from typing import Any

from firmware_py.errors import ConfigError, PreconditionError

TIMEOUT = 600.0
"""seconds the gateway may take to search and compact (traces of up to [storage]
traces_max_bytes are read through)"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pv = sub.add_parser(
        "privacy",
        help="export or erase one vehicle's data (by VIN) on its owner's request",
        description="A customer may ask for a copy of what the box keeps about their car, or for "
        "its erasure (GDPR Art. 15, 20, 17). What names the VIN is found in the job journal, the "
        "outbox (records not yet sent to the portal), help-desk requests, coding backups, "
        "VIN-bound tickets, reports and traces (docs/data-protection.md). The portal's copy is "
        "not touched from here.",
    ).add_subparsers(dest="privacy_command", metavar="ACTION", required=True)
    p = pv.add_parser("export", help="write one archive (JSON and traces) of a vehicle's data")
    p.add_argument("--vin", required=True, help="the vehicle identification number (17 characters)")
    p.add_argument(
        "-o", "--output", type=Path, help="the archive to write (default vehicle-data-VIN.zip)"
    )
    p.add_argument("--state-dir", type=Path)
    p.set_defaults(func=cmd_export)
    p = pv.add_parser(
        "erase",
        help="erase a vehicle's data from the box and record the erasure",
        description="Erase everything the box keeps that names the VIN (traces, job journal, "
        "reports, help-desk requests, outbox records not yet sent, coding backups, tickets bound "
        "to it), then search the whole state directory again. Refused while a job runs or while "
        "the box is connected to that car. The erasure is recorded with a keyed hash of the VIN, "
        "the time and who asked.",
    )
    p.add_argument("--vin", required=True, help="the vehicle identification number (17 characters)")
    p.add_argument(
        "--by", default="", help="who asked for it, for the record (default: your login name)"
    )
    p.add_argument("--state-dir", type=Path)
    p.set_defaults(func=cmd_erase)
    p = pv.add_parser("erasures", help="the erasures done on this box (time, VIN hash, who)")
    p.add_argument("--state-dir", type=Path)
    p.set_defaults(func=cmd_erasures)


def _state_dir(args: argparse.Namespace) -> Path:
    from firmware_py.config import load_config

    if args.state_dir:
        return Path(args.state_dir)
    return load_config(Path(args.config) if args.config else None).storage.state_dir


def _ask_gateway(state_dir: Path, method: str, path: str, body: Any = None) -> Any:
    """The gateway's answer; None when no gateway runs with this state directory."""
    from firmware_py.config import ADMIN_SOCKET
    from firmware_py.errors import VciError
    from firmware_py.gateway.admin import admin_request

    if not (state_dir / ADMIN_SOCKET).exists():
        return None
    try:
        status, answer = admin_request(state_dir, method, path, body, timeout=TIMEOUT)
    except ConfigError as err:
        if "no gateway is running" in str(err):
            return None
        raise
    if status >= 400:
        refused = VciError(str(answer.get("message")), hint=answer.get("hint"))
        refused.code = str(answer.get("error", "vci_error"))
        raise refused
    return answer


def cmd_export(args: argparse.Namespace) -> int:
    import zipfile

    from firmware_py.gateway import privacy
    from firmware_py.gateway.store import Store

    vin = privacy.normalise_vin(args.vin)
    state_dir = _state_dir(args)
    data = _ask_gateway(state_dir, "POST", "/privacy/export", {"vin": vin})
    if data is None:
        data = privacy.export(Store(state_dir), vin, time.time())
    output = args.output or Path(f"vehicle-data-{vin}.zip")
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("vehicle-data.json", json.dumps(data, indent=1, default=str))
        for name in data["traces"]:
            trace = state_dir / privacy.TRACES_DIR / Path(name).name
            if trace.is_file():
                archive.write(trace, f"traces/{trace.name}")
    counts = {k: len(v) for k, v in data["records"].items() if v}
    if args.json:
        print(json.dumps({"archive": str(output), "records": counts, "traces": data["traces"]}))
        return 0
    listed = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no records"
    print(
        f"{output}: {listed}, {len(data['reports'])} report(s), {len(data['traces'])} trace(s) "
        f"of {vin}"
    )
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from firmware_py.gateway import privacy
    from firmware_py.gateway.store import Store

    vin = privacy.normalise_vin(args.vin)
    state_dir = _state_dir(args)
    who = f"cli:{getpass.getuser()}" + (f" for {args.by}" if args.by else "")
    result = _ask_gateway(state_dir, "POST", "/privacy/erase", {"vin": vin, "who": who})
    if result is None:
        result = privacy.erase(Store(state_dir), vin, who, time.time())
    if args.json:
        print(json.dumps(result))
    else:
        done = ", ".join(f"{n} {k}" for k, n in result["deleted"].items() if n) or "nothing"
        print(f"erased {vin}: {done}; recorded as {result['vin_hash']}")
    if result["remaining"]:
        raise PreconditionError(
            "the VIN is still named in: " + ", ".join(result["remaining"]),
            hint="Erase again when no job runs; if it stays, report it as a bug",
        )
    return 0


def cmd_erasures(args: argparse.Namespace) -> int:
    from firmware_py.gateway import privacy
    from firmware_py.gateway.store import Store

    found = privacy.erasures(Store(_state_dir(args)))
    if args.json:
        print(json.dumps(found))
        return 0
    if not found:
        print("no erasures")
    for e in found:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e["time"]))
        print(f"{when}  {e['vin_hash']}  {e['who']}  {sum(e['deleted'].values())} item(s)")
    return 0


def add_admin_routes(admin: Any, gateway: Any) -> None:
    """``/privacy/export`` and ``/privacy/erase`` on the gateway's admin socket."""
    from aiohttp import web

    from firmware_py.errors import VciError
    from firmware_py.gateway import privacy
    from firmware_py.strict_json import StrictJsonError, loads, obj

    async def body(request: web.Request) -> dict[str, Any]:
        data = obj(loads(await request.read()))
        return {"vin": privacy.normalise_vin(str(data.get("vin", ""))), **data}

    async def export(request: web.Request) -> web.Response:
        import asyncio

        try:
            vin = (await body(request))["vin"]
            data = await asyncio.get_running_loop().run_in_executor(
                None, privacy.export, gateway.store, vin, gateway.now()
            )
        except StrictJsonError as err:
            return web.json_response(err.to_dict(), status=400)
        except VciError as err:
            return web.json_response(err.to_dict(), status=409)
        return web.Response(text=json.dumps(data, default=str), content_type="application/json")

    async def erase(request: web.Request) -> web.Response:
        try:
            data = await body(request)
            who = str(data.get("who") or "cli")[:200]
            result = await gateway.erase_vin(data["vin"], who)
            # the journal gets the hash only: neither the VIN nor who asked
            print(f"privacy: erased a vehicle's data ({result['vin_hash']})", flush=True)
        except StrictJsonError as err:
            return web.json_response(err.to_dict(), status=400)
        except VciError as err:
            return web.json_response(err.to_dict(), status=409)
        return web.json_response(result)

    admin.router.add_post("/privacy/export", export)
    admin.router.add_post("/privacy/erase", erase)
