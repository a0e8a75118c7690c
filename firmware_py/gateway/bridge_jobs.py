"""The ``enet_bridge`` job: the box lends the car's ENET to the workshop's own tester (ISTA,
E-Sys, Tool32 through EdiabasLib's ENET interface) on its Wi-Fi side, for one admitted client
address, until it is closed, times out or its ticket's window ends (docs/enet.md).

The job runs on the vehicle worker like every job, and holds it while the bridge is open: the
runner refuses other vehicle jobs meanwhile (the car has one tester at a time). The sockets live
on the gateway's event loop (:mod:`.bridge_net`); the worker thread serves what the bridge needs of
the box's own vehicle link - the supply voltage for the guard and, on a car reached over D-CAN,
the ISO-TP exchanges of the translation - from a queue, so nothing else touches the link.

Every session is traced (pcap of the tester's side and of the car's side) and written to the
session log (outbox records of kind ``session_log``, as raw requests' are, with ``event``
``bridge.opened``, ``bridge.refused`` and ``bridge.closed``; the last counts every request that
is not a read by what it does), which the portal receives.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import queue
import time
import uuid
from collections.abc import Callable
from typing import Any

from firmware_py import heartbeat
from firmware_py.config import Config
from firmware_py.errors import ConfigError, VehicleNotFoundError
from firmware_py.gateway.bridge_guard import Guard, Refusal, suppresses_positive_response
from firmware_py.gateway.bridge_net import BridgeIdentity, EnetCar, Hub, session_pcaps
from firmware_py.gateway.jobs import JobContext
from firmware_py.gateway.tariffs import RAW_CLASS_SCOPE, Scope
from firmware_py.i18n import N_
from firmware_py.transport.hsfz import GATEWAY_ADDRESS, HsfzIdentity
from firmware_py.transport.isotp_link import MAX_PAYLOAD as ISOTP_MAX_PAYLOAD
from firmware_py.uds.flash.sequencer import FlashOptions
from firmware_py.uds.raw_requests import RawClass

log = logging.getLogger(__name__)
#: a request of each class, to ask the tickets whether they include its scope
SCOPE_EXAMPLE = {
    RAW_CLASS_SCOPE[raw_class]: request
    for raw_class, request in (
        (RawClass.READ, "22F190"),
        (RawClass.WRITE, "2EF19000"),
        (RawClass.ROUTINE, "31010203"),
        (RawClass.PROGRAMMING, "3101FF00"),
    )
}
VOLTAGE_MAX_AGE = 1.0
"""seconds a voltage reading is good for (a flash tool sends its erase and download close together)"""


class WorkerQueue:
    """Work for the vehicle worker thread while the bridge holds it."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[[Any], Any], concurrent.futures.Future[Any]]] = (
            queue.Queue()
        )

    def submit(self, fn: Callable[[Any], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((fn, future))
        return future

    def serve(self, vehicle: Any, timeout: float) -> None:
        """Run queued work for up to ``timeout`` seconds (returns after the first item)."""
        heartbeat.beat()  # the bridge holds the worker for hours, but waits in bounded steps
        try:
            fn, future = self._queue.get(timeout=timeout)
        except queue.Empty:
            return
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(vehicle))
        except Exception as err:  # noqa: BLE001 - handed to whoever waits for it
            future.set_exception(err)

    def drain(self) -> None:
        while True:
            try:
                _, future = self._queue.get_nowait()
            except queue.Empty:
                return
            future.cancel()


class CanCar:
    """translate: ISO-TP on D-CAN with BMW extended addressing, on the vehicle worker."""

    max_message = ISOTP_MAX_PAYLOAD

    def __init__(
        self, work: WorkerQueue, loop: asyncio.AbstractEventLoop, p2: float, p2_star: float
    ) -> None:
        self.work, self.loop, self.p2, self.p2_star = work, loop, p2, p2_star

    def request(
        self,
        target: int,
        payload: bytes,
        answer: Callable[[bytes], None],
        done: Callable[[], None],
    ) -> None:
        def emit(data: bytes) -> None:
            self.loop.call_soon_threadsafe(answer, data)

        def finished(future: concurrent.futures.Future[Any]) -> None:
            _log_failure(future)
            self.loop.call_soon_threadsafe(done)

        future = self.work.submit(
            lambda vehicle: can_exchange(vehicle.link, target, payload, emit, self.p2, self.p2_star)
        )
        future.add_done_callback(finished)


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("bridge: a request to the car failed: %s", future.exception())


def can_exchange(
    link: Any,
    target: int,
    payload: bytes,
    emit: Callable[[bytes], None],
    p2: float,
    p2_star: float,
) -> None:
    """One request on ISO-TP and its answers (response pending, then the response). No answer
    within P2 (P2* after a response pending) means none: the tester's own timeout reports it."""
    conn = link.ecu_connection(target)
    if not conn.is_open():
        conn.open()
    conn.empty_rxqueue()
    conn.send(payload)
    if suppresses_positive_response(payload):
        return
    timeout = p2
    while True:
        heartbeat.beat()  # each wait is bounded by P2 or P2*
        frame = conn.wait_frame(timeout=timeout)
        if frame is None:
            return
        emit(bytes(frame))
        if len(frame) >= 3 and frame[0] == 0x7F and frame[2] == 0x78:
            timeout = p2_star
            continue
        return


def _link_trace(vehicle: Any) -> Any:
    """The pcap of the box's own vehicle link (in translation: the car's side of the bridge)."""
    pcap = getattr(getattr(vehicle.link, "trace", None), "pcap", None)
    return getattr(pcap, "path", None)


def _client(params: Any) -> str:
    text = str(params.get("client", "")).strip()
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError as err:
        raise ConfigError(
            N_("the bridge needs the tester's IPv4 address, not {text}"),
            values={"text": repr(text)},
            hint=N_("Give the address of the computer running the tester, e.g. 192.168.4.23"),
        ) from err
    return str(address)


def _identity(vehicle: Any, cfg: Config, mode: str) -> tuple[BridgeIdentity, EnetCar | None]:
    """What the bridge answers to identification requests, and (relay) where the car's ENET is:
    the addresses its identification answers came from."""
    from firmware_py.transport.doip_link import discover_doip
    from firmware_py.transport.hsfz_link import discover_hsfz

    if mode == "translate":
        gateway = vehicle.catalog.ecus[0]
        vin = str(vehicle.ecu(gateway).read_dids(0xF190)[0xF190])
        mac = uuid.getnode().to_bytes(6, "big")
        hsfz = HsfzIdentity(GATEWAY_ADDRESS, mac.hex().upper(), vin)
        return BridgeIdentity(vin, eid=mac, gid=mac, hsfz=hsfz), None
    t = cfg.transport
    found = discover_doip(
        t.doip_host, t.doip_port, timeout=1.0, protocol_version=t.doip_protocol_version
    )
    hsfz_found = discover_hsfz(t.doip_host, t.hsfz_control_port, timeout=1.0)
    if not found and not hsfz_found:
        raise VehicleNotFoundError(
            N_("the car answers neither DoIP nor HSFZ identification at {doip_host}"),
            values={"doip_host": t.doip_host},
            hint=N_("Check the ENET cable and that the car is awake (ignition on)"),
        )
    hsfz_identity = hsfz_found[0][1] if hsfz_found else None
    hsfz_host = hsfz_found[0][0] if hsfz_found else t.doip_host
    doip_host = found[0].host if found else t.doip_host
    car = EnetCar((hsfz_host, t.hsfz_port), (doip_host, t.doip_port))
    if found:
        a = found[0]
        return BridgeIdentity(a.vin, a.logical_address, a.eid, a.gid, hsfz_identity, True), car
    assert hsfz_identity is not None
    return BridgeIdentity(hsfz_identity.vin, hsfz=hsfz_identity, doip=False), car


def enet_bridge(vehicle: Any, ctx: JobContext) -> dict[str, Any]:
    cfg: Config = ctx.services.get("config") or Config()
    loop: asyncio.AbstractEventLoop = ctx.services["loop"]
    outbox = ctx.services.get("outbox")
    entitled: Callable[[str, Any], Any] | None = ctx.services.get("entitled")
    client = _client(ctx.params)
    asked = ctx.params.get("timeout")  # a number, or absent (job_params checked it)
    timeout = float(cfg.bridge.timeout if asked is None else asked)
    if not 1 <= timeout <= cfg.bridge.max_timeout:
        raise ConfigError(
            N_("the bridge's timeout must be 1..{max_timeout} seconds"),
            values={"max_timeout": format(cfg.bridge.max_timeout, "g")},
        )
    decision = entitled("enet_bridge", None) if entitled else None
    ticket = getattr(decision, "ticket_id", None)
    mode = "translate" if vehicle.link.kind == "can" else "relay"  # doip or hsfz: the ENET
    ctx.step("identify the car", client=client, mode=mode)
    identity, enet_car = _identity(vehicle, cfg, mode)

    work = WorkerQueue()
    last: list[tuple[float, float]] = []

    async def voltage() -> float | None:
        if last and time.monotonic() - last[0][0] < VOLTAGE_MAX_AGE:
            return last[0][1]
        voltmeter = ctx.services.get("voltmeter")  # the box's own ADC first (gateway/battery.py)
        if voltmeter is not None:
            volts = float(await asyncio.get_running_loop().run_in_executor(None, voltmeter.read))
        else:
            volts = float(await asyncio.wrap_future(work.submit(lambda v: v.supply_voltage())))
        last[:] = [(time.monotonic(), volts)]
        return volts

    car = enet_car or CanCar(work, loop, cfg.uds.p2, cfg.uds.p2_star)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    traces = ctx.services["store"].state_dir / "traces"
    tester_path = traces / f"{stamp}-bridge-{ctx.job.id}-tester.pcap"
    car_path = traces / f"{stamp}-bridge-{ctx.job.id}-car.pcap" if mode == "relay" else None
    tester_pcap, car_pcap = session_pcaps(tester_path, car_path)
    refusals: list[dict[str, Any]] = []
    session = {"job": ctx.job.id, "client": client, "ticket": ticket, "mode": mode}
    session["who"] = f"{ctx.job.caller.origin}:{ctx.job.caller.who}"

    def log_record(event: str, body: dict[str, Any], record_id: str) -> None:
        if outbox is not None:
            outbox.put(
                "session_log",
                {"event": event, "time": time.time(), "origin": ctx.job.caller.origin, **body},
                record_id=f"bridge-{ctx.job.id}-{record_id}",
            )

    def refused(refusal: Refusal) -> None:  # on the loop
        entry = refusal.to_dict()
        refusals.append(entry)
        log.warning("bridge: refused %s from %s: %s", refusal.what, client, refusal.reason)
        log_record(
            "bridge.refused", {**session, "vin": identity.vin, **entry}, f"refused-{len(refusals)}"
        )
        ctx.progress(min_interval=0.0, refused=len(refusals), last_refusal=entry)

    allowed: dict[Scope, tuple[float, bool]] = {}

    def scope_entitled(scope: Scope) -> bool:  # on the loop; a ticket check at most once a second
        if entitled is None:
            return True
        now = time.monotonic()
        if scope not in allowed or now - allowed[scope][0] > 1.0:
            request = SCOPE_EXAMPLE[scope]
            allowed[scope] = (now, entitled("raw_uds", {"request": request}).allowed)
        return allowed[scope][1]

    floor = ctx.services.get("flash_options", FlashOptions()).min_voltage
    hub = Hub(
        client,
        cfg.bridge,
        car,
        Guard(floor),
        identity,
        voltage,
        refused,
        scope_entitled,
        tester_pcap,
        car_pcap,
    )
    reason = "closed"
    started = time.monotonic()
    try:
        try:
            ports = asyncio.run_coroutine_threadsafe(hub.start(), loop).result(10)
        except OSError as err:
            raise ConfigError(
                N_("the bridge cannot listen on {listen_host}: {err}"),
                values={"listen_host": cfg.bridge.listen_host, "err": err},
                hint=N_(
                    "Check [bridge] listen_host (the box's Wi-Fi address) and that no other program uses the bridge's ports (6801, 6811, 13400)"
                ),
            ) from err
        opened = {**session, "vin": identity.vin, "ports": ports, "timeout": timeout}
        log_record("bridge.opened", opened, "opened")
        log.info("bridge open for %s (%s): %s", client, mode, ports)
        # (event data named "job" is the job itself on the bus: the step leaves the id out)
        shown = {k: v for k, v in opened.items() if k != "job"}
        ctx.step("bridge open", **shown, min_voltage=hub.guard.min_voltage)
        deadline = started + timeout
        next_check = started
        while True:
            work.serve(vehicle, 0.1)
            now = time.monotonic()
            if ctx.cancelled:
                reason = "closed"
                break
            if now >= deadline:
                reason = "timeout"
                break
            if entitled is not None and now >= next_check:
                next_check = now + 1.0
                if not entitled("enet_bridge", None).allowed and not hub.guard.downloading:
                    reason = "ticket window ended"
                    break
    finally:
        asyncio.run_coroutine_threadsafe(hub.stop(), loop).result(10)
        work.drain()
        for pcap in (tester_pcap, car_pcap):
            if pcap is not None:
                pcap.close()
    result = {
        **session,
        "vin": identity.vin,
        "reason": reason,
        "seconds": round(time.monotonic() - started, 1),
        "counters": hub.counters.to_dict(),
        "requests": dict(hub.changes),
        "refusals": refusals,
        "traces": [str(p) for p in (tester_path, car_path or _link_trace(vehicle)) if p],
    }
    log_record("bridge.closed", result, "closed")
    log.info("bridge for %s closed (%s): %s", client, reason, hub.counters.to_dict())
    return result
