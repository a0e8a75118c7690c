"""The ``map_update`` job (docs/maps.md): a navigation map data package the portal published,
fetched, installed into the head unit's map region and activated with the car's code.

In order, on the vehicle worker thread:

1. the manifest and the activation code are checked (the portal's signature; the code is for
   this car's VIN, read from the car now, and for this package): refused before anything is
   fetched or sent;
2. the link must be ENET (DoIP or HSFZ: a map does not go over CAN) and the target ECU known;
3. the package is fetched into ``<state dir>/maps/`` with the box's downloader (download.py: free
   space checked first, HTTP ranges, resumable without fetching a byte twice, SHA-256 checked),
   with the job's progress (``phase: download``);
4. it is written to the head unit's map region: programming session, security access,
   RequestDownload, TransferData in the blocks the ECU offers (``phase: install``), check memory
   (SHA-256). An installation that broke off goes on where the head unit's stored bytes end,
   when their SHA-256 is that of the package's first bytes (DID 0xD0A0);
5. the map is activated with the code (routine 0x0D20) and the active map read back; the
   package then leaves the data partition (kept until then, for an installation to go on).
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
from pathlib import Path
from typing import Any

from firmware_py.errors import EcuNotRespondingError, NegativeResponseError
from firmware_py.gateway import map_offers
from firmware_py.gateway.battery import floor_voltage
from firmware_py.gateway.download import download
from firmware_py.gateway.jobs import JobContext
from firmware_py.gateway.map_package import MapError, MapManifest, parse_activation, parse_manifest
from firmware_py.i18n import N_, Text
from firmware_py.uds.ecu import EcuSession
from firmware_py.uds.vehicle import VehicleSession

DID_MAP_STATE = 0xD0A0
"""the head unit's map region: bytes held (4), their SHA-256 (32), the active map (ASCII)"""
RID_CHECK_MEMORY, RID_MAP_ACTIVATION = 0x0202, 0x0D20
SECURITY_LEVEL = 0x11
"""the programming level the download services need"""
MIN_VOLTAGE = 12.5
"""volts: below it no installation starts (the head unit writes for minutes; connect a charger)"""
ENET = ("doip", "hsfz")


def map_update(vehicle: VehicleSession, ctx: JobContext) -> dict[str, Any]:
    keys = getattr(ctx.entitlements, "keys", None) or ctx.services.get("portal_keys", {})
    state_dir = Path(ctx.services["store"].state_dir)
    offer = ctx.params.get("offer")
    if offer:  # an offer the box keeps (map_offers.py)
        manifest_token, activation_token = map_offers.load(state_dir, str(offer))
    else:
        manifest_token, activation_token = ctx.params["manifest"], ctx.params["activation"]
    manifest = parse_manifest(str(manifest_token), keys)
    ctx.step("check the activation code", map=manifest.name)
    from firmware_py.gateway.job_handlers import vehicle_vin

    vin = vehicle_vin(vehicle)  # the car connected now, whichever ECU answers first
    code = parse_activation(str(activation_token), keys, manifest=manifest, vin=vin)
    if vehicle.kind not in ENET:
        raise MapError(
            N_("a map update needs the car's ENET link (DoIP or HSFZ), this link is {kind}"),
            values={"kind": vehicle.kind},
            hint=N_("Connect the box's ENET cable and start again"),
        )
    info = vehicle.catalog.find(manifest.ecu)
    directory = state_dir / "maps"
    ctx.step("download", map=manifest.name, bytes=manifest.size)
    started = time.monotonic()
    path = _download(manifest, directory, ctx)
    fetched_in = time.monotonic() - started
    session = vehicle.ecu(info)
    result = _install(session, manifest, path, ctx, vehicle)
    ctx.step("activate", map=manifest.name)
    session.change_session("extended")
    try:
        session.routine("start", RID_MAP_ACTIVATION, code.token.encode("ascii"))
    except NegativeResponseError as err:
        raise MapError(
            N_(
                "{name} refused the activation code ({value}): it is not for this car or not for the map {name2}. The map is installed, not active"
            ),
            values={"name": info.name, "value": err.args[0], "name2": manifest.name},
            hint=N_("Ask the portal for this car's activation code of this map"),
        ) from err
    _, _, active = _map_state(session)
    if active != manifest.name:
        raise MapError(
            N_("{name} reports the map {value} after the activation"),
            values={"name": info.name, "value": active or Text(N_("none"))},
        )
    session.change_session("default")
    path.unlink(missing_ok=True)  # the head unit has it: the data partition keeps none (GiBs)
    if offer:
        map_offers.forget(state_dir, str(offer))
    return {
        "map": manifest.name,
        "ecu": info.name,
        "vin": code.vin,
        "bytes": manifest.size,
        "download_seconds": round(fetched_in, 2),
        **result,
        "active": active,
    }


def _download(manifest: MapManifest, directory: Path, ctx: JobContext) -> Path:
    """The box's downloader in an event loop of this (the vehicle worker's) thread."""
    import aiohttp

    def progress(have: int, size: int) -> None:
        _stop_if_cancelled(ctx, "the bytes fetched are kept; the next map update goes on from them")
        ctx.progress(
            min_interval=0.5, phase="download", bytes=have, total=size,
            percent=round(100 * have / size, 1),
        )  # fmt: skip

    async def fetch() -> Path:
        async with aiohttp.ClientSession() as session:
            return await download(
                manifest.fetch(), directory, session=session,
                stall_timeout=float(ctx.services.get("map_stall_timeout", 60.0)),
                backoff=float(ctx.services.get("map_retry_backoff", 1.0)), progress=progress,
            )  # fmt: skip

    return asyncio.run(fetch())


def _stop_if_cancelled(ctx: JobContext, kept: str) -> None:
    if ctx.cancelled:
        raise MapError(
            N_("the map update was cancelled; {kept}"),
            values={"kept": kept},
            hint=N_("Start it again to finish"),
        )


def _map_state(session: EcuSession) -> tuple[int, bytes, str]:
    raw = session.read_did_raw(DID_MAP_STATE)
    if len(raw) < 36:
        raise MapError(
            N_("{name} has no map region (DID 0xD0A0 answered {n} bytes)"),
            values={"name": session.name, "n": len(raw)},
        )
    return struct.unpack(">I", raw[:4])[0], raw[4:36], raw[36:].decode("ascii", "replace").strip()


def _prefix_digest(path: Path, length: int) -> bytes:
    h, left = hashlib.sha256(), length
    with path.open("rb") as f:
        while left:
            block = f.read(min(left, 1 << 20))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.digest()


def _install(
    session: EcuSession, m: MapManifest, path: Path, ctx: JobContext, vehicle: Any
) -> dict[str, Any]:
    held, held_sha, _ = _map_state(session)
    start = held if 0 < held <= m.size and _prefix_digest(path, held) == held_sha else 0
    read, source = floor_voltage(ctx.services, vehicle)
    volts = read()
    if volts < MIN_VOLTAGE:
        raise MapError(
            N_(
                "battery voltage {volts} V ({source}) is below {min_voltage} V; the map was not installed"
            ),
            values={
                "volts": format(volts, ".1f"),
                "source": source,
                "min_voltage": format(MIN_VOLTAGE, ".1f"),
            },
            hint=N_("Connect a battery charger (13.5-14.5 V) and start again"),
        )
    ctx.step("install", map=m.name, ecu=session.name, resumed_from=start or None)
    session.change_session("extended")
    session.change_session("programming")
    session.security_access(SECURITY_LEVEL)
    began = time.monotonic()
    if start < m.size:
        max_len = session.request_download(m.address + start, m.size - start)
        if session.max_payload:  # maxNumberOfBlockLength may exceed what the transport carries
            max_len = min(max_len, session.max_payload)
        size = max_len - 2
        if size <= 0:
            raise MapError(
                N_("{name} offers blocks of {max_len} bytes; cannot transfer"),
                values={"name": session.name, "max_len": max_len},
            )
        done, counter = start, 1
        with path.open("rb") as f:
            f.seek(start)
            while done < m.size:
                block = f.read(min(size, m.size - done))
                if not block:
                    raise MapError(
                        N_("the map package {name} is shorter than its manifest"),
                        values={"name": path.name},
                    )
                _stop_if_cancelled(ctx, f"{session.name} keeps the bytes written; the next map "
                                   "update goes on from them")  # fmt: skip
                session.transfer_data(counter, block)
                counter = (counter + 1) & 0xFF
                done += len(block)
                ctx.progress(
                    min_interval=0.5, phase="install", ecu=session.name, bytes=done,
                    total=m.size, percent=round(100 * done / m.size, 1),
                )  # fmt: skip
        session.request_transfer_exit()
    seconds = time.monotonic() - began
    option = struct.pack(">II", m.address, m.size) + bytes.fromhex(m.sha256)
    if session.routine("start", RID_CHECK_MEMORY, option)[:1] != b"\x00":
        raise MapError(
            N_("{name}: the map region's SHA-256 is not the package's; the map is not active"),
            values={"name": session.name},
            hint=N_("Start the map update again: the map is written anew"),
        )
    try:
        session.ecu_reset(0x01)
    except EcuNotRespondingError:  # an ECU may reset before it answers
        pass
    return {
        "installed_from": start,
        "install_seconds": round(seconds, 2),
        "install_rate": round((m.size - start) / seconds) if seconds > 0 else None,
    }
