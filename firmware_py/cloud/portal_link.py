"""The box's link to the portal, whatever carries it: MQTT 5 to the portal's broker
(:mod:`firmware_py.cloud.mqtt_link`) or, where a network blocks the MQTT port, a WebSocket to the
portal's bridge (:mod:`firmware_py.cloud.ws_link`). Both carry the same envelopes on the same
topics; this module holds what they share.

Remote jobs go to the gateway's one job runner, with the same ticket checks as local ones; the
vehicle timing stays on the box (the portal sends whole jobs or raw requests). A job goes on while
the link is down; its final result also goes to the outbox, which is delivered until the portal
acknowledges it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from firmware_py.cloud import topics
from firmware_py.cloud.box_state import VERSION, VIN, BoxState
from firmware_py.cloud.schema import Message, ProtocolError, decode
from firmware_py.config import CloudConfig
from firmware_py.errors import VciError
from firmware_py.gateway.jobs import Caller, JobRequest
from firmware_py.gateway.supervise import supervised

log = logging.getLogger(__name__)
REQUESTS_WITH_ANSWERS = frozenset({"job.request", "uds.request", "ticket.deliver", "ticket.revoke"})
SEEN_IDS = 1024
"""request ids remembered: a request delivered twice (at least once delivery) runs once"""


class _LinkUp(asyncio.Event):
    """``connected``, that also publishes ``portal.link`` (``up``: true/false) on the gateway's
    event bus when it changes (the box's portal LED follows it)."""

    def __init__(self, bus: Any, carrier: str) -> None:
        super().__init__()
        self._bus, self._carrier = bus, carrier

    def set(self) -> None:
        if not self.is_set():
            super().set()
            if self._bus is not None:
                self._bus.publish("portal.link", {"up": True, "carrier": self._carrier})

    def clear(self) -> None:
        if self.is_set():
            super().clear()
            if self._bus is not None:
                self._bus.publish("portal.link", {"up": False, "carrier": self._carrier})


class PortalLink:
    """What a carrier adds: :meth:`start`, :meth:`stop` and :meth:`publish`; it calls
    :meth:`received` on the gateway's loop for every message addressed to the box, and sets or
    clears :attr:`connected`."""

    carrier = "none"

    def __init__(self, gateway: Any, device_id: str, cfg: CloudConfig) -> None:
        self.gateway = gateway
        self.device = device_id
        self.cfg = cfg
        # job id -> (response topic, request id, request type)
        self._routes: dict[str, tuple[str, str, str]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._downloads: set[asyncio.Task[None]] = set()
        """package downloads under way (package.offer): kept referenced until they end"""
        self.connected: asyncio.Event = _LinkUp(getattr(gateway, "bus", None), self.carrier)

    # -- what a carrier provides -------------------------------------------------------------------
    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        await self._stop_tasks()
        for task in list(self._downloads):  # the .part stays: the next offer goes on from it
            task.cancel()
        await asyncio.gather(*self._downloads, return_exceptions=True)

    def publish(self, topic: str, payload: bytes, corr: bytes | None = None) -> None:
        """Send at least once (queued while the link is down)."""
        raise NotImplementedError

    def publish_state(self, state: BoxState) -> None:
        """Publish the box's state on its ``state`` topic, retained (the WebSocket bridge
        retains what the box sends there; MQTT sets the retain flag)."""
        self.publish(topics.state(self.device), state.encode())

    # -- the box's state (firmware_py/cloud/box_state.py) ------------------------------------------
    def version(self) -> str | None:
        """The software release the box runs, as the update offers compare it."""
        installed = getattr(getattr(self.gateway, "updater", None), "installed", None)
        return installed if isinstance(installed, str) and VERSION.fullmatch(installed) else None

    def state(self, online: bool = True) -> BoxState:
        """What the box says on its ``state`` topic now: online, its release, the car."""
        if not online:
            return BoxState(False, self.version())
        from firmware_py.uds.identification import model_from_vin

        vehicle = self.gateway.vehicle_state() if hasattr(self.gateway, "vehicle_state") else {}
        vin = vehicle.get("vin")
        if not isinstance(vin, str) or not VIN.fullmatch(vin):
            # a VIN the portal would refuse (spaces, lower case, I/O/Q from an odd ECU) must not
            # cost the whole state: the box says it is online without a car
            return BoxState(True, self.version())
        model = model_from_vin(vin)
        return BoxState(True, self.version(), vin, model[:80] if model else None)

    # -- shared ----------------------------------------------------------------------------------
    def _start_tasks(self) -> None:
        self._tasks = [
            supervised(self._forward_events, "portal link: events"),
            supervised(self._pump_outbox, "portal link: outbox"),
        ]

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def reply(self, topic: str | None, message: Message) -> None:
        if topic is None or not topic.startswith(topics.box(self.device) + "/res/"):
            return  # answers go only to this box's response topics
        try:
            payload = message.encode()
        except ProtocolError as err:  # larger than a message may be (a huge job result)
            log.error("%s for %s not sent: %s", message.type, message.corr, err)
            if message.type == "job.event":
                return  # progress: the next event or the result follows
            error = ProtocolError(
                f"the {message.type} could not be sent: {err}",
                hint="Ask for less at once (one ECU, fewer values), or read it on the box's page",
            )
            payload = Message("error", error.to_dict(), corr=message.corr).encode()
        self.publish(topic, payload, message.corr.encode() if message.corr else None)

    def requester(self, topic: str) -> str | None:
        """The portal user a message on ``topic`` came from: the broker lets only that user
        publish on this box's ``req/<user>`` (broker/acl.example); ``None`` for any other topic."""
        parsed = topics.parse(topic)
        if parsed is None or parsed[0] != self.device or parsed[1] != "req":
            return None
        return parsed[2]

    def received(
        self, topic: str, payload: bytes, response: str | None, corr: bytes | None = None
    ) -> None:
        """One message from the portal (on the gateway's loop), as it arrived on ``topic``.

        Who sent it is the user the topic names (the ACL vouches for it), never a field of the
        message; answers go to that user's response topic only: a request that names another
        response topic is refused there."""
        user = self.requester(topic)
        if user is None:
            log.warning("dropped a message on %r: not a requests topic of this box", topic)
            return
        own = topics.responses(self.device, user)
        tag = corr.decode("utf-8", "replace")[:64] if corr else None
        if response is not None and response != own:
            # the MQTT 5 correlation data lets the sender match the refusal to what it sent
            error = ProtocolError(
                f"answers to {user} go to {own}, not {response!r}: the box answers only the sender"
            )
            self.reply(own, Message("error", error.to_dict(), corr=tag))
            return
        try:
            msg = decode(payload)
        except ProtocolError as err:
            log.warning("refused a malformed message from the portal: %s", err)
            self.reply(response, Message("error", err.to_dict(), corr=tag))
            return
        if msg.type in REQUESTS_WITH_ANSWERS:
            if not response:
                # nowhere to answer: a request nobody waits for is not run
                log.warning("dropped %s %s: it has no response topic", msg.type, msg.id)
                return
            if corr is None or corr != msg.id.encode():
                self.reply(
                    response,
                    Message(
                        "error",
                        ProtocolError(
                            "the request's MQTT correlation data is missing or is not its id"
                        ).to_dict(),
                        corr=msg.id,
                    ),
                )
                return
        if msg.id in self._seen:
            log.info("dropped message %s: delivered twice", msg.id)
            return
        self._seen[msg.id] = None
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        # msg.time is not signed: it never moves trusted time (a time.beacon does)
        try:
            if msg.type in ("job.request", "uds.request"):
                self._job(msg, own, user)  # response is own here
            elif msg.type == "job.cancel":
                job_id = str(msg.body.get("job", ""))
                route = self._routes.get(job_id)
                if route is None or route[0] != own:  # a user may stop only what it started
                    raise ProtocolError(f"no running remote job {job_id!r} of {user} on this box")
                self.gateway.runner.cancel(job_id)
            elif msg.type == "time.beacon":
                self.gateway.observe_time_beacon(str(msg.body.get("beacon", ""))[:4096])
            elif msg.type == "update.offer":
                # signed by the portal for this box (update_offer.py): the sender vouches nothing
                self.gateway.update_offered(str(msg.body.get("offer", ""))[:4096])
            elif msg.type == "emission_limits.publish":
                # signed by the portal for this box (limits_update.py); the answer says what is kept
                kept = self.gateway.emission_limits_published(str(msg.body.get("limits", "")))
                self.reply(response or own, msg.answer("emission_limits.stored", kept))
            elif msg.type == "map.offer":
                # signed by the portal (map_package.py); kept until the technician installs it
                kept = self.gateway.map_offered(
                    str(msg.body.get("manifest", ""))[:4096],
                    str(msg.body.get("activation", ""))[:4096],
                )
                self.reply(response or own, msg.answer("map.offered", kept))
            elif msg.type == "trace.read":  # the session page's trace download, piece by piece
                offset = msg.body.get("offset")
                if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                    raise ProtocolError("trace.read: offset is a number of bytes")
                chunk = self.gateway.trace_chunk(str(msg.body.get("name") or "")[:200], offset)
                self.reply(response or own, msg.answer("trace.chunk", chunk))
            elif msg.type == "info.piece":  # the car's repair information, for the tablet offline
                self.reply(
                    response or own, msg.answer("info.stored", self.gateway.info_piece(msg.body))
                )
            elif msg.type == "package.offer":
                # signed by the portal for this box (package_offer.py); the download runs in the
                # background and the answer comes when the package is kept (or refused)
                task = asyncio.get_running_loop().create_task(
                    self._package_offered(msg, response or own)
                )
                self._downloads.add(task)
                task.add_done_callback(self._downloads.discard)
            elif msg.type == "outbox.ack":
                ids = msg.body.get("ids")
                if isinstance(ids, list):
                    self.gateway.outbox_acknowledged([str(i) for i in ids][:1000])
            elif msg.type == "helpdesk.answer":
                self.gateway.helpdesk_answer(msg.body, user)
            elif msg.type in ("ticket.deliver", "ticket.revoke"):
                from firmware_py.cloud import ticket_delivery

                self.reply(own, ticket_delivery.handle(self.gateway, msg))
            else:
                raise ProtocolError(f"a box does not take {msg.type} messages")
        except VciError as err:
            self.reply(response or own, msg.answer("error", err.to_dict()))

    async def _package_offered(self, msg: Message, answer_to: str) -> None:
        try:
            kept = await self.gateway.package_offered(str(msg.body.get("offer", ""))[:4096])
        except VciError as err:
            self.reply(answer_to, msg.answer("error", err.to_dict()))
            return
        except Exception as err:  # noqa: BLE001 - the portal waits for an answer: it gets one
            log.exception("package offer %s", msg.id)
            self.reply(
                answer_to, msg.answer("error", VciError(f"the download failed: {err!r}").to_dict())
            )
            return
        self.reply(answer_to, msg.answer("package.stored", kept))

    def _job(self, msg: Message, response: str, user: str) -> None:
        if msg.ticket:
            self.gateway.add_ticket(msg.ticket)  # verified like a local one; refusals say why
        if msg.type == "uds.request":
            request = JobRequest(
                "raw_uds", {"request": str(msg.body.get("request", ""))}, msg.body.get("ecu")
            )
        else:
            params = msg.body.get("params") or {}
            if not isinstance(params, dict):
                raise ProtocolError("params is not an object")
            request = JobRequest(str(msg.body.get("kind", "")), params, msg.body.get("ecu"))
        try:
            job = self.gateway.runner.submit(request, Caller("portal", user))
        except VciError as err:
            self.reply(response, msg.answer("job.denied", err.to_dict()))
            return
        self._routes[job.id] = (response, msg.id, msg.type)
        self.reply(response, msg.answer("job.accepted", {"job": job.to_dict()}))

    async def _forward_events(self) -> None:
        sub = self.gateway.bus.subscribe()
        try:
            while True:
                event = await sub.get()
                if event.kind == "vehicle.state" and self.connected.is_set():
                    self.publish_state(self.state())  # a car identified or lost
                    continue
                route = self._routes.get(event.job_id or "")
                if route is None or event.kind in ("job.accepted",):
                    continue
                topic, request_id, request_type = route
                if request_type == "uds.request":
                    if event.final:  # one answer, no progress: a raw request is one exchange
                        self.reply(
                            topic, Message("uds.response", _uds_answer(event.data), corr=request_id)
                        )
                elif event.final:
                    self.reply(
                        topic,
                        Message("job.result", {"job": event.data.get("job")}, corr=request_id),
                    )
                else:
                    body = {k: v for k, v in event.to_dict().items() if k != "job"}
                    self.reply(topic, Message("job.event", body, corr=request_id))
                if event.final:
                    del self._routes[event.job_id or ""]
        finally:
            sub.close()

    async def _pump_outbox(self, interval: float = 2.0) -> None:
        while True:
            await asyncio.sleep(interval)
            if not self.connected.is_set():
                continue
            records = self.gateway.outbox.pending(50)
            for record in records:
                self.publish(topics.outbox(self.device), _outbox_message(record))
            if records:
                self.gateway.outbox.sent([r.id for r in records])


def _outbox_message(record: Any) -> bytes:
    """An outbox record as a message; one larger than a message may be goes without its body,
    saying so (sent, it does not hold up the records after it at every round, for good)."""
    body = {"id": record.id, "kind": record.kind, "body": record.body}
    try:
        return Message("outbox.record", body).encode()
    except ProtocolError as err:
        log.error("outbox record %s goes without its body: %s", record.id, err)
        body["body"] = {"omitted": str(err)}
        return Message("outbox.record", body).encode()


def _uds_answer(data: dict[str, Any]) -> dict[str, Any]:
    job = data.get("job") or {}
    result = job.get("result") or {}
    answer: dict[str, Any] = {"job": job.get("id"), "ecu": result.get("ecu", job.get("ecu"))}
    if job.get("state") == "done":
        answer["response"] = str(result.get("response", "")).replace(" ", "")
    else:
        answer["error"] = job.get("error") or {"error": "failed", "message": "the request failed"}
    return answer


class PortalConnection:
    """The link ``cfg.transport`` asks for. ``auto``: MQTT first; when the broker has not answered
    within ``cfg.fallback_after`` seconds (a network that blocks the MQTT port) and a ``ws_url`` is
    set, the WebSocket to the portal's bridge instead. Starting returns at once (the local page
    does not wait for the portal)."""

    def __init__(self, gateway: Any, device_id: str, cfg: CloudConfig) -> None:
        self.gateway, self.device, self.cfg = gateway, device_id, cfg
        self.link: PortalLink | None = None
        self._fallback: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from firmware_py.cloud.mqtt_link import MqttLink
        from firmware_py.cloud.ws_link import WsLink

        if self.cfg.transport == "websocket" or not self.cfg.broker_host:
            self.link = WsLink(self.gateway, self.device, self.cfg)
        else:
            self.link = MqttLink(self.gateway, self.device, self.cfg)
        await self.link.start()
        if self.cfg.transport == "auto" and self.cfg.ws_url and isinstance(self.link, MqttLink):
            self._fallback = asyncio.create_task(self._fall_back(self.link))

    async def _fall_back(self, mqtt: PortalLink) -> None:
        from firmware_py.cloud.ws_link import WsLink

        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that arrives as the broker connects (CPython gh-86296), and stop() would wait on
            # this task for ever
            async with asyncio.timeout(self.cfg.fallback_after):
                await mqtt.connected.wait()
            return
        except TimeoutError:
            pass
        log.warning(
            "no answer from the broker %s:%d within %.0f s; taking the WebSocket link to %s",
            self.cfg.broker_host,
            self.cfg.broker_port,
            self.cfg.fallback_after,
            self.cfg.ws_url,
        )
        await mqtt.stop()
        self.link = WsLink(self.gateway, self.device, self.cfg)
        await self.link.start()

    async def stop(self) -> None:
        if self._fallback is not None:
            self._fallback.cancel()
            await asyncio.gather(self._fallback, return_exceptions=True)
        if self.link is not None:
            await self.link.stop()
