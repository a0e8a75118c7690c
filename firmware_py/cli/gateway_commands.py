"""``vci gateway``: the box's daemon - the job runner with the tablet's local page; ``vci pair
--approve``, the pairing button for a box without one (a PC); and ``vci bridge open|close|status``,
the ENET bridge for the workshop's own tester (docs/enet.md). ``pair`` and ``bridge`` talk to the
running gateway over its admin socket (a Unix socket only the box's owner can open)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware_py.cli.transport_args import add_transport_args, config_from_args
from firmware_py.config import ADMIN_SOCKET
from firmware_py.errors import ConfigError

if TYPE_CHECKING:
    from firmware_py.config import Config
    from firmware_py.gateway.flash_journal import FlashRecord
    from firmware_py.gateway.service import Gateway


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    g = sub.add_parser(
        "gateway",
        help="run the gateway with the tablet's local page",
        description="Run the box: the job runner, the tablet's local web page (pairing, vehicle, "
        "fault memory, live data, coding, programming, the ENET bridge, tickets) and, when "
        "[cloud] broker_host or "
        "ws_url is configured (VCI_CLOUD_*), the link to the portal: MQTT 5 over TLS, or the "
        "WebSocket to the portal's bridge where MQTT is blocked (docs/remote-protocol.md); a box "
        "without its certificate first enrols at [cloud] enrol_url in the background and starts "
        "the link when a workshop has claimed it (docs/claiming.md).",
    )
    g.add_argument(
        "--host",
        default="127.0.0.1",
        help="address of the local page (the box: its Wi-Fi address; default 127.0.0.1)",
    )
    g.add_argument("--port", type=int, default=8080, help="port of the local page (default 8080)")
    g.add_argument("--open", action="store_true", help="open the page in a browser")
    g.add_argument(
        "--resume-flash",
        action="store_true",
        help="at start-up, finish a programming job that a power cut interrupted",
    )
    add_transport_args(g)
    g.set_defaults(func=cmd_gateway)
    p = sub.add_parser("pair", help="approve a waiting tablet (the box's pairing button, for a PC)")
    p.add_argument("--approve", action="store_true", required=True)
    p.add_argument("--state-dir", type=Path)
    p.set_defaults(func=cmd_pair)
    b = sub.add_parser(
        "bridge",
        help="lend the car's ENET to a workshop tester on the Wi-Fi (ISTA, E-Sys, Tool32)",
        description="Open, close or show the ENET bridge of the running gateway: the tester at "
        "--client gets HSFZ (6801/6811) and DoIP (13400) on the box's Wi-Fi address, relayed to "
        "the car (or translated to D-CAN). Needs a paired tablet and a ticket that allows "
        "diagnosis; what the tester sends needs what it does (writes: coding, routines: service, "
        "the programming session, erase and download: raw_programming, an Engineering ticket), "
        "and erase and download are refused below the programming voltage floor (docs/enet.md).",
    )
    b.add_argument("action", choices=("open", "close", "status"))
    b.add_argument("--client", help="the tester's IPv4 address (open)")
    b.add_argument(
        "--timeout",
        type=float,
        help="seconds until the bridge closes (open; default [bridge] timeout, one hour)",
    )
    b.add_argument("--state-dir", type=Path)
    b.set_defaults(func=cmd_bridge)


def label_code(state_dir: Path) -> str:
    """The code printed on the box's label; made at first start where none exists (a PC)."""
    import secrets

    for path in (Path("/etc/vci/label-code"), state_dir / "label-code"):
        if path.exists():
            return path.read_text().strip()
    code = "".join(secrets.choice("ACDEFGHJKLMNPQRTUVWXY34679") for _ in range(8))
    path = state_dir / "label-code"
    path.write_text(code + "\n")
    path.chmod(0o600)
    return code


async def serve(
    cfg: Config,
    transport: str,
    host: str,
    port: int,
    open_browser: bool,
    resume_flash: bool = False,
) -> None:
    import asyncio
    import webbrowser

    from aiohttp import web

    from firmware_py.gateway.battery import BatteryCare
    from firmware_py.gateway.flash_journal import FlashJournal
    from firmware_py.gateway.job_handlers import HANDLERS, vehicle_vin
    from firmware_py.gateway.sd_notify import (
        Notifier,
        keep_watchdog,
        watchdog_period,
        worker_stall,
        worker_stall_limit,
    )
    from firmware_py.gateway.service import Gateway
    from firmware_py.gateway.setup import entitlement_check
    from firmware_py.gateway.store import Store
    from firmware_py.hw.box import open_hardware
    from firmware_py.keys import load_public_keys
    from firmware_py.uds.vehicle import VehicleSession
    from firmware_py.web.app import create_app
    from firmware_py.web.limits import ConnectionCounter, handler_args, start_site
    from firmware_py.web.pairing import Pairing, PairingError

    store = Store(cfg.storage.state_dir)
    entitlements = entitlement_check(cfg)
    # the box's LEDs, ENET activation line and battery ADC; None on a PC (logged)
    hardware = open_hardware(cfg.hw, enet=transport != "can")
    care = (
        BatteryCare(cfg.hw.battery_care_volts, cfg.hw.battery_care_after)
        if cfg.hw.battery_care_volts > 0
        else None
    )
    gateway = Gateway(
        store,
        open_vehicle=lambda: VehicleSession.open(
            cfg.transport,
            transport,
            timing=cfg.uds,
            trace_path=cfg.storage.state_dir
            / "traces"
            / f"{time.strftime('%Y%m%d-%H%M%S')}-{transport}.pcap",
        ),
        handlers=HANDLERS,
        read_vin=vehicle_vin,
        entitlements=entitlements,
        clock=entitlements.clock if entitlements is not None else None,
        link_description=f"{transport.upper()}",
        services={
            "publisher_keys": load_public_keys(cfg.security.publisher_keys_dir),
            "config": cfg,
        },
        min_free_bytes=cfg.storage.min_free_bytes,
        traces_max_bytes=cfg.storage.traces_max_bytes,
        max_package_bytes=cfg.storage.max_package_bytes,
        info_cache_bytes=cfg.storage.info_cache_bytes,
        hardware=hardware,
        battery_care=care,
        shutdown_command=cfg.hw.shutdown_command,
        privacy=cfg.privacy,
    )
    code = label_code(cfg.storage.state_dir)
    pairing = Pairing(store, code)
    notifier = Notifier()
    notifier.status("starting")
    await gateway.start()
    watchdog = asyncio.create_task(
        keep_watchdog(
            notifier,
            watchdog_period(),
            worker_stall(gateway.worker.heartbeat.stalled_for, worker_stall_limit(cfg.uds)),
        )
    )
    unfinished = FlashJournal(store).unfinished()
    resuming = None
    if unfinished:
        record = unfinished[0]
        if resume_flash:
            resuming = asyncio.create_task(_resume_flash(gateway, record))
            notifier.status(f"resuming interrupted programming job {record.job_id}")
        else:
            print(
                f"interrupted programming job {record.job_id}: {record.where()} (or start with --resume-flash)",
                flush=True,
            )
    link = None
    linking = None
    if cfg.cloud.enabled:
        from firmware_py.cloud.enrol import link_when_enrolled
        from firmware_py.cloud.portal_link import PortalConnection
        from firmware_py.config import device_id
        from firmware_py.gateway.updates import Updater

        # update offers come over the portal link, signed with the portal's ticket keys
        gateway.updater = Updater(
            cfg.update, cfg.storage.state_dir, load_public_keys(cfg.security.portal_keys_dir),
            device_id(cfg), gateway,
        )  # fmt: skip
        await gateway.updater.start()
        link = PortalConnection(gateway, device_id(cfg), cfg.cloud)
        # at once with a certificate; else after enrolment, in the background (no restart)
        linking = asyncio.create_task(link_when_enrolled(cfg, code, link), name="portal link")
    app = create_app(gateway, pairing, web_cfg=cfg.web)
    runner = web.AppRunner(app, access_log=None, **handler_args(cfg.web.header_timeout))
    await runner.setup()
    site = await start_site(
        runner,
        host,
        port,
        ConnectionCounter(cfg.web.max_connections, cfg.web.max_connections_per_client),
    )

    admin = web.Application()

    async def button(request: web.Request) -> web.Response:
        try:
            return web.json_response({"paired": pairing.press_button(gateway.now())})
        except PairingError as err:
            return web.json_response(err.to_dict(), status=409)

    admin.router.add_post("/button", button)
    add_bridge_routes(admin, gateway, pairing)
    add_job_routes(admin, gateway)
    from firmware_py.cli.privacy_commands import add_admin_routes

    add_admin_routes(admin, gateway)  # vci privacy export|erase (docs/data-protection.md)

    def press() -> None:  # the box's own button (gpiozero thread)
        def approve() -> None:
            try:
                print(f"paired: {pairing.press_button(gateway.now())}", flush=True)
            except PairingError as err:
                print(f"pairing button: {err}", flush=True)

        loop.call_soon_threadsafe(approve)

    loop = asyncio.get_running_loop()
    hw_button = None
    button_pin: int | str | None = cfg.hw.pairing_button_pin or None
    if button_pin is None and hardware is not None:
        button_pin = hardware.pinout.pairing_button  # the pinout's (hardware/pinout.toml)
    if button_pin is not None:
        from firmware_py.hw.buttons import PairingButton

        hw_button = PairingButton(button_pin, press)
    admin_runner = web.AppRunner(admin, access_log=None)
    await admin_runner.setup()
    sock_path = cfg.storage.state_dir / ADMIN_SOCKET
    sock_path.unlink(missing_ok=True)
    await web.UnixSite(admin_runner, str(sock_path)).start()
    sock_path.chmod(0o600)  # only who may act as the box's owner can press its button
    url = f"http://{host}:{port}/"
    print(
        # not the label code itself: it also claims the box on the portal, and this goes to the
        # journal
        f"vci-gateway ready page={url} (pair: open the page, then vci pair --approve or the "
        f"label code: vci label on the box, {cfg.storage.state_dir / 'label-code'} on a PC)",
        flush=True,
    )
    notifier.ready(f"serving the page on {url}")
    if open_browser:
        if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
            webbrowser.open(url)
        else:
            print(f"no display here: open {url} in a browser on this machine", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        notifier.stop()
        if resuming is not None:
            resuming.cancel()
        site.close()
        await runner.cleanup()
        await admin_runner.cleanup()
        await gateway.stop()
        if linking is not None:
            linking.cancel()
            await asyncio.gather(linking, return_exceptions=True)
        if link is not None:
            await link.stop()
        if gateway.updater is not None:
            await gateway.updater.stop()
        if hw_button is not None:
            hw_button.close()
        watchdog.cancel()
        notifier.close()
        if hardware is not None:
            hardware.close()


async def _resume_flash(gateway: Gateway, record: FlashRecord) -> None:
    """Finish an interrupted programming job; a refusal or a failure is logged and the gateway
    goes on serving (exiting would restart it into the same refusal: a crash loop)."""
    from firmware_py.errors import VciError
    from firmware_py.gateway.jobs import Caller, JobRequest

    ecu = record.packages[record.current]["ecu"] if record.packages else None
    sub = gateway.bus.subscribe()
    try:
        try:
            job = gateway.runner.submit(
                JobRequest("programming", {"resume": record.job_id}, ecu),
                Caller("gateway", "start-up"),
            )
        except VciError as err:
            print(f"interrupted programming job {record.job_id} not resumed: {err}", flush=True)
            return
        print(f"resuming interrupted programming job {record.job_id}: {record.where()}", flush=True)
        while True:
            event = await sub.get()
            if event.job_id == job.id and event.kind in ("job.done", "job.failed"):
                break
        if job.error:
            print(
                f"resuming programming job {record.job_id} failed: {job.error.get('message')}"
                f" {job.error.get('hint') or ''}",
                flush=True,
            )
        else:
            print(f"programming job {record.job_id} resumed and verified", flush=True)
    finally:
        sub.close()


def cmd_gateway(args: argparse.Namespace) -> int:
    from firmware_py.gateway.sd_notify import Notifier, allow_startup

    # before the heavy imports: the start-up may take longer than WatchdogSec (sd_notify.py)
    early = Notifier()
    allow_startup(early)
    early.close()
    import asyncio

    cfg, transport = config_from_args(args)
    asyncio.run(serve(cfg, transport, args.host, args.port, args.open, args.resume_flash))
    return 0


def add_bridge_routes(admin: Any, gateway: Any, pairing: Any) -> None:
    """``/bridge`` on the admin socket: open (needs a paired tablet), close, state."""
    from aiohttp import web

    from firmware_py.errors import VciError
    from firmware_py.gateway.jobs import Caller
    from firmware_py.strict_json import StrictJsonError, loads, obj

    async def bridge_open(request: web.Request) -> web.Response:
        try:
            data = obj(loads(await request.read()))
        except StrictJsonError as err:
            return web.json_response(err.to_dict(), status=400)
        if not pairing.tablets():
            return web.json_response(
                {
                    "error": "not_paired",
                    "message": "no tablet is paired with this box",
                    "hint": "Pair a tablet first (open the box's page, then vci pair --approve)",
                },
                status=409,
            )
        try:  # client and timeout are checked with the job's parameters (job_params)
            job = gateway.open_bridge(
                data.get("client", ""), data.get("timeout"), Caller("cli", "box owner")
            )
        except StrictJsonError as err:
            return web.json_response(err.to_dict(), status=400)
        except VciError as err:
            return web.json_response(err.to_dict(), status=409)
        return web.json_response(job, status=202)

    async def bridge_close(request: web.Request) -> web.Response:
        job = gateway.close_bridge()
        if job is None:
            return web.json_response(
                {"error": "not_open", "message": "no ENET bridge is open", "hint": None},
                status=409,
            )
        return web.json_response({"closing": job})

    async def bridge_state(request: web.Request) -> web.Response:
        state = gateway.bridge_state()
        job = gateway.runner.jobs.get(request.query.get("job", ""))
        if job is not None:
            state["job"] = job.to_dict()
        return web.json_response(state)

    admin.router.add_post("/bridge/open", bridge_open)
    admin.router.add_post("/bridge/close", bridge_close)
    admin.router.add_get("/bridge", bridge_state)


def add_job_routes(admin: Any, gateway: Any) -> None:
    """``/jobs/active`` on the admin socket: the jobs queued or running (``vci update install``
    refuses while there is one: a system update never interrupts a job on a car)."""
    from aiohttp import web

    async def active(request: web.Request) -> web.Response:
        return web.json_response({"active": [job.to_dict() for job in gateway.runner.active()]})

    admin.router.add_get("/jobs/active", active)


def _admin(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request to the running gateway's admin socket."""
    from firmware_py.config import load_config
    from firmware_py.gateway.admin import admin_request

    cfg = load_config(
        Path(args.config) if args.config else None,
        overrides={"storage": {"state_dir": args.state_dir}} if args.state_dir else None,
    )
    return admin_request(cfg.storage.state_dir, method, path, body)


def cmd_bridge(args: argparse.Namespace) -> int:
    import json

    if args.action == "status":
        status, body = _admin(args, "GET", "/bridge")
        print(json.dumps(body, indent=2) if args.json else _bridge_text(body))
        return 0
    if args.action == "close":
        status, body = _admin(args, "POST", "/bridge/close")
        if status != 200:
            print(f"error: {body.get('message')}", file=sys.stderr)
            return 2
        print("ENET bridge closed")
        return 0
    if not args.client:
        raise ConfigError(
            "vci bridge open needs --client ADDRESS", hint="e.g. --client 192.168.4.23"
        )
    body = {"client": args.client, "timeout": args.timeout}
    status, job = _admin(args, "POST", "/bridge/open", body)
    if status != 202:
        print(f"error: {job.get('message')}. {job.get('hint') or ''}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the listeners are up, or the job failed
        _, state = _admin(args, "GET", f"/bridge?job={job['id']}")
        job = state["job"]
        if job["state"] in ("failed", "done", "denied"):
            error = job.get("error") or {}
            print(f"error: {error.get('message')}. {error.get('hint') or ''}", file=sys.stderr)
            return 2
        if job["progress"].get("step") == "bridge open":
            print(json.dumps(job["progress"]) if args.json else _bridge_text(state))
            return 0
        time.sleep(0.1)
    print("error: the bridge did not open within 30 s", file=sys.stderr)
    return 2


def _bridge_text(state: dict[str, Any]) -> str:
    job = state.get("job") or {}
    progress = job.get("progress") or {}
    if not state.get("open"):
        return "no ENET bridge is open"
    ports = progress.get("ports") or {}
    where = " ".join(f"{k}={v}" for k, v in ports.items())
    return (
        f"ENET bridge open for {progress.get('client')} ({progress.get('mode')}), "
        f"job {job.get('id')}: {where}"
    )


def cmd_pair(args: argparse.Namespace) -> int:
    status, body = _admin(args, "POST", "/button")
    if status != 200:
        print(f"error: {body.get('message')}. {body.get('hint') or ''}", file=sys.stderr)
        return 2
    print(f"paired: {body['paired']}")
    return 0
