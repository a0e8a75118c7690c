"""The portal's side of a remote session: jobs sent to a box over MQTT 5, with live events."""

from __future__ import annotations

import queue
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_py.cloud import topics
from firmware_py.cloud.mqtt_link import disable_nagle
from firmware_py.cloud.schema import Message, ProtocolError, decode

FINAL = ("job.result", "job.denied", "error")
REQUEST_EXPIRY = 30
"""seconds a request waits at the broker for a box that is offline"""


class RemoteError(Exception):
    pass


class RemoteSession:
    """One portal user's connection to the broker (certificate common name = the user)."""

    def __init__(
        self, host: str, port: int, pki: Path, user: str, client_id: str | None = None
    ) -> None:
        self.user = user
        self.inbox: queue.Queue[tuple[str, Message]] = queue.Queue()
        self.states: dict[str, str] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.suback: queue.Queue[list[Any]] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"portal-{user}-{time.monotonic_ns()}",
            protocol=mqtt.MQTTv5,
        )
        self.client.tls_set(
            ca_certs=str(pki / "ca.pem"),
            certfile=str(pki / f"{user}.pem"),
            keyfile=str(pki / f"{user}.key"),
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda client, *_: disable_nagle(client)
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.suback.put(list(codes))
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 86400
        self.client.connect(host, port, keepalive=20, clean_start=False, properties=props)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/state"):
            self.states[msg.topic.split("/")[2]] = msg.payload.decode(errors="replace")
            return
        try:
            message = decode(bytes(msg.payload))
        except ProtocolError:
            return
        if message.id in self._seen:
            return  # delivered twice (at least once delivery)
        self._seen[message.id] = None
        if len(self._seen) > 4096:
            self._seen.popitem(last=False)
        self.inbox.put((msg.topic, message))

    def subscribe(self, topic: str, timeout: float = 5.0) -> list[Any]:
        """Subscribe and return the broker's reason codes (a refused topic shows as a failure)."""
        self.client.subscribe(topic, qos=1)
        return self.suback.get(timeout=timeout)

    def boxes_online(self, timeout: float = 1.0) -> dict[str, str]:
        self.subscribe(f"{topics.PREFIX}/+/state")
        time.sleep(timeout)  # retained states arrive right after the subscription
        return dict(self.states)

    def collect_outbox(self, store: Any, seconds: float) -> int:
        """Receive outbox records from every box this user serves for ``seconds``, keep them in
        ``store`` (a :class:`portal.records.RecordStore`) and acknowledge them. Returns how many were new."""
        self.subscribe(f"{topics.PREFIX}/+/outbox")
        new, deadline = 0, time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                topic, msg = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if msg.type != "outbox.record":
                continue
            box = topic.split("/")[2]
            new += store.keep(box, msg.body)
            self.send(box, Message("outbox.ack", {"ids": [msg.body.get("id")]}))
        return new

    def send(self, box: str, message: Message) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = topics.responses(box, self.user)
        props.CorrelationData = message.id.encode()
        # a request for a box that is away expires at the broker: it must not start a job hours later
        props.MessageExpiryInterval = REQUEST_EXPIRY
        self.client.publish(
            topics.requests(box), message.encode(), qos=1, properties=props
        ).wait_for_publish(5)

    def run(
        self,
        box: str,
        kind: str,
        *,
        ecu: str | None = None,
        params: dict[str, Any] | None = None,
        ticket: str | None = None,
        timeout: float = 120.0,
        on_event: Callable[[Message], None] | None = None,
    ) -> Message:
        """Send a job and wait for its end; returns the final message (job.result, job.denied or error)."""
        codes = self.subscribe(topics.responses(box, self.user))
        if any(getattr(c, "is_failure", False) for c in codes):
            raise RemoteError(f"the broker does not let {self.user} use box {box}")
        request = Message(
            "job.request",
            {"kind": kind, "ecu": ecu, "params": params or {}, "user": self.user},
            ticket=ticket,
            time=time.time(),
        )
        self.send(box, request)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                _, msg = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if msg.corr != request.id:
                continue
            if on_event is not None:
                on_event(msg)
            if msg.type in FINAL:
                return msg
        raise RemoteError(f"no answer from box {box} within {timeout:.0f} s")
