"""The box's link to the portal over MQTT 5 (paho-mqtt 2.x): TLS with the box's client
certificate, a retained online state with an ``offline`` last will, requests with MQTT 5
response topic and correlation data, reconnect with back-off.

Remote jobs go to the gateway's one job runner, with the same ticket checks as local ones; the
vehicle timing stays on the box (the portal sends whole jobs or raw requests). A job goes on while
the link is down; its final result also goes to the outbox, which is delivered until the portal
acknowledges it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_py.cloud import topics
from firmware_py.cloud.schema import Message, ProtocolError, decode
from firmware_py.config import CloudConfig
from firmware_py.errors import VciError
from firmware_py.gateway.jobs import Caller, JobRequest

log = logging.getLogger(__name__)
SESSION_EXPIRY = 7 * 86400


class MqttLink:
    def __init__(self, gateway: Any, device_id: str, cfg: CloudConfig) -> None:
        self.gateway = gateway
        self.device = device_id
        self.cfg = cfg
        self._routes: dict[str, tuple[str, str]] = {}  # job id -> (response topic, request id)
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = asyncio.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"box-{device_id}", protocol=mqtt.MQTTv5
        )
        self.client.max_queued_messages_set(
            10_000
        )  # events of a job that goes on while the link is down
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.will_set(topics.state(device_id), b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.client.tls_set(
            ca_certs=str(self.cfg.ca_file),
            certfile=str(self.cfg.cert_file),
            keyfile=str(self.cfg.key_file),
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY  # the broker keeps our session across outages
        self.client.connect_async(
            self.cfg.broker_host,
            self.cfg.broker_port,
            keepalive=20,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()
        self._tasks = [
            asyncio.create_task(self._forward_events()),
            asyncio.create_task(self._pump_outbox()),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.connected.is_set():
            self.client.publish(
                topics.state(self.device), b"offline", qos=1, retain=True
            ).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho callbacks (its network thread) ---------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.warning("portal broker refused the connection: %s", reason_code)
            return
        client.subscribe(topics.requests(self.device), qos=1)
        client.publish(topics.state(self.device), b"online", qos=1, retain=True)
        self.loop.call_soon_threadsafe(self.connected.set)
        log.info("connected to the portal broker %s:%d", self.cfg.broker_host, self.cfg.broker_port)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.loop.call_soon_threadsafe(self.connected.clear)
        log.warning("portal link down (%s); jobs go on, events follow after reconnect", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        response = getattr(props, "ResponseTopic", None)
        corr = getattr(props, "CorrelationData", None)
        self.loop.call_soon_threadsafe(self._received, bytes(msg.payload), response, corr)

    # -- on the gateway's loop -------------------------------------------------------------------
    def _reply(self, topic: str | None, message: Message) -> None:
        if topic is None or not topic.startswith(topics.box(self.device) + "/res/"):
            return  # answers go only to this box's response topics
        props = Properties(PacketTypes.PUBLISH)
        if message.corr:
            props.CorrelationData = message.corr.encode()
        self.client.publish(topic, message.encode(), qos=1, properties=props)

    def _received(self, payload: bytes, response: str | None, corr: bytes | None = None) -> None:
        try:
            msg = decode(payload)
        except ProtocolError as err:
            log.warning("refused a malformed message from the portal: %s", err)
            # the MQTT 5 correlation data lets the sender match the refusal to what it sent
            tag = corr.decode("utf-8", "replace")[:64] if corr else None
            self._reply(response, Message("error", err.to_dict(), corr=tag))
            return
        if msg.time:
            clock = getattr(self.gateway, "clock", None)
            if clock is not None:
                clock.observe_portal_time(msg.time)
        try:
            if msg.type in ("job.request", "uds.request"):
                self._job(msg, response)
            elif msg.type == "job.cancel":
                self.gateway.runner.cancel(str(msg.body.get("job", "")))
            elif msg.type == "outbox.ack":
                ids = msg.body.get("ids")
                if isinstance(ids, list):
                    self.gateway.outbox.acknowledged([str(i) for i in ids][:1000])
            else:
                raise ProtocolError(f"a box does not take {msg.type} messages")
        except VciError as err:
            self._reply(response, msg.answer("error", err.to_dict()))

    def _job(self, msg: Message, response: str | None) -> None:
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
            job = self.gateway.runner.submit(
                request, Caller("portal", str(msg.body.get("user", "remote")))
            )
        except VciError as err:
            self._reply(response, msg.answer("job.denied", err.to_dict()))
            return
        if response:
            self._routes[job.id] = (response, msg.id)
        self._reply(response, msg.answer("job.accepted", {"job": job.to_dict()}))

    async def _forward_events(self) -> None:
        sub = self.gateway.bus.subscribe()
        try:
            while True:
                event = await sub.get()
                route = self._routes.get(event.job_id or "")
                if route is None or event.kind in ("job.accepted",):
                    continue
                topic, request_id = route
                kind = "job.result" if event.final else "job.event"
                body = (
                    {k: v for k, v in event.to_dict().items() if k != "job"}
                    if not event.final
                    else {"job": event.data.get("job")}
                )
                self._reply(topic, Message(kind, body, corr=request_id))
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
                body = {"id": record.id, "kind": record.kind, "body": record.body}
                self.client.publish(
                    topics.outbox(self.device), Message("outbox.record", body).encode(), qos=1
                )
            if records:
                self.gateway.outbox.sent([r.id for r in records])
