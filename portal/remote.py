"""The portal's side of a remote session: jobs sent to a box over MQTT 5, with live events.

A user publishes only on its own requests topic of a box (``vci/box/<box>/req/<user>``) and hears
the box only on its own response topic (``res/<user>``), the box's ``state`` and ``outbox``: the
broker's ACL allows no more (broker/acl.example). What arrives is taken by its topic: answers
only from the response topic of the box a request went to, records only from a box's outbox
topic, kept under the box the topic names."""

from __future__ import annotations

import queue
import ssl
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_py.cloud import box_state, topics
from firmware_py.cloud.mqtt_link import disable_nagle
from firmware_py.cloud.schema import Message, ProtocolError, decode

FINAL = (
    "job.result", "job.denied", "uds.response", "emission_limits.stored", "map.offered",
    "package.stored", "trace.chunk", "info.stored", "error",
)  # fmt: skip
REQUEST_EXPIRY = 30
"""seconds a request waits at the broker for a box that is offline"""
SESSION_EXPIRY = 600
"""seconds the broker keeps a portal session (and its queued answers) across an outage"""


class RemoteError(Exception):
    pass


class RemoteSession:
    """One portal user's connection to the broker (certificate common name = the user). Safe to
    use from several threads: each request's answers go to the caller that sent it."""

    def __init__(
        self, host: str, port: int, pki: Path, user: str, client_id: str | None = None
    ) -> None:
        self.user = user
        self.inbox: queue.Queue[tuple[str, Message]] = queue.Queue()
        """messages that answer no pending request of this session (and refusals of raw sends)"""
        self.status: dict[str, box_state.BoxState] = {}
        """each box's last state in full: online, its release, the car connected"""
        self.on_status: Callable[[str, box_state.BoxState], None] | None = None
        """called (on paho's thread) with each state message in full (portal/box_status.py)"""
        self._records: Any = None
        self.records_received = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._waiting: dict[str, tuple[str, queue.Queue[Message]]] = {}
        """request id -> (the box it went to, its answers)"""
        self._subacks: dict[int, queue.Queue[list[Any]]] = {}
        self._subscribed: set[str] = set()
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"portal-{user}-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.tls_set(
            ca_certs=str(pki / "ca.pem"),
            certfile=str(pki / f"{user}.pem"),
            keyfile=str(pki / f"{user}.key"),
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY
        self.client.connect(host, port, keepalive=20, clean_start=False, properties=props)
        self.client.loop_start()

    @property
    def states(self) -> dict[str, str]:
        """each box's last state as a word: ``online`` or ``offline``"""
        return {box: state.word for box, state in list(self.status.items())}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho's network thread ---------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        """(Re)connected: a broker that lost this session (restarted without its persistence
        file) knows none of its subscriptions; they are made again, so the records and answers
        of the boxes go on arriving after an outage."""
        disable_nagle(client)
        for topic in list(self._subscribed):
            client.subscribe(topic, qos=1)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        with self._lock:
            waiter = self._subacks.pop(mid, None)
        if waiter is not None:
            waiter.put(list(codes))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        parsed = topics.parse(msg.topic)
        if parsed is None:
            return
        box, kind, user = parsed
        if kind == "state":
            try:
                state = box_state.parse(bytes(msg.payload))
            except ProtocolError:
                return  # not a state a box (or the bridge) publishes: nothing to show
            self.status[box] = state
            if self.on_status is not None:
                self.on_status(box, state)
            return
        if kind not in ("outbox", "res") or (kind == "res" and user != self.user):
            return
        try:
            message = decode(bytes(msg.payload))
        except ProtocolError:
            return
        with self._lock:
            if message.id in self._seen:
                return  # delivered twice (at least once delivery)
            self._seen[message.id] = None
            if len(self._seen) > 4096:
                self._seen.popitem(last=False)
            waiting = self._waiting.get(message.corr or "")
        if kind == "outbox":
            if message.type == "outbox.record" and self._records is not None:
                # the box is the one the topic names (only it may publish there), not the body's
                self.records_received += self._records.keep(box, message.body)
                ids = self._records.acknowledgements(box, message.body)
                if ids:
                    self.send(box, Message("outbox.ack", {"ids": ids}), wait=False)
        elif waiting is not None and waiting[0] == box:
            waiting[1].put(message)
        else:
            self.inbox.put((msg.topic, message))

    # -- callers' threads --------------------------------------------------------------------------
    def subscribe(self, topic: str, timeout: float = 5.0) -> list[Any]:
        """Subscribe and return the broker's reason codes (a refused topic shows as a failure)."""
        waiter: queue.Queue[list[Any]] = queue.Queue()
        with self._lock:  # the SUBACK cannot arrive before its waiter is in place
            rc, mid = self.client.subscribe(topic, qos=1)
            if mid is None:
                raise RemoteError(f"cannot subscribe to {topic}: {rc}")
            self._subacks[mid] = waiter
        codes = waiter.get(timeout=timeout)
        if not any(getattr(c, "is_failure", False) for c in codes):
            self._subscribed.add(topic)
        return codes

    def boxes_online(self, timeout: float = 1.0) -> dict[str, str]:
        self.subscribe(f"{topics.PREFIX}/+/state")
        time.sleep(timeout)  # retained states arrive right after the subscription
        return dict(self.states)

    def keep_records(self, store: Any) -> None:
        """From now on keep every outbox record of the boxes this user serves in ``store`` (a
        :class:`portal.records.RecordStore`) and acknowledge it to its box."""
        self._records = store
        self.subscribe(f"{topics.PREFIX}/+/outbox")

    def collect_outbox(self, store: Any, seconds: float) -> int:
        """Keep outbox records for ``seconds``; returns how many were new."""
        before = self.records_received
        self.keep_records(store)
        time.sleep(seconds)
        return self.records_received - before

    def send(
        self, box: str, message: Message, *, wait: bool = True, expiry: int | None = REQUEST_EXPIRY
    ) -> None:
        """Publish ``message`` to ``box``; ``expiry``: seconds it waits at the broker for a box
        that is away (None: until the box's session expires, for a help-desk answer)."""
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = topics.responses(box, self.user)
        props.CorrelationData = message.id.encode()
        # a request for a box that is away expires at the broker: it must not start a job hours later
        if expiry is not None:
            props.MessageExpiryInterval = expiry
        info = self.client.publish(
            topics.requests(box, self.user), message.encode(), qos=1, properties=props
        )
        if wait:
            info.wait_for_publish(5)

    def cancel(self, box: str, job_id: str) -> None:
        """Ask a job this portal started on ``box`` (its id from ``job.accepted``) to stop; jobs
        that can stop safely do (live data), programming and coding run to their end. Its
        ``job.result`` follows as usual."""
        self.send(box, Message("job.cancel", {"job": job_id}, time=time.time()))

    def uds(
        self,
        box: str,
        ecu: str,
        request: bytes,
        *,
        ticket: str | None = None,
        timeout: float = 30.0,
    ) -> Message:
        """One raw UDS request, executed by the box with its own timing; returns ``uds.response``
        (``response`` as hex, or ``error``), ``job.denied`` or ``error``."""
        message = Message(
            "uds.request",
            {"ecu": ecu, "request": request.hex()},
            ticket=ticket,
            time=time.time(),
        )
        return self.exchange(box, message, timeout)

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
        request = Message(
            "job.request",
            {"kind": kind, "ecu": ecu, "params": params or {}},
            ticket=ticket,
            time=time.time(),
        )
        return self.exchange(box, request, timeout, on_event)

    def exchange(
        self,
        box: str,
        request: Message,
        timeout: float,
        on_event: Callable[[Message], None] | None = None,
    ) -> Message:
        """Send ``request`` to ``box`` and wait for its final answer (events to ``on_event``)."""
        responses = topics.responses(box, self.user)
        if responses not in self._subscribed:
            codes = self.subscribe(responses)
            if any(getattr(c, "is_failure", False) for c in codes):
                raise RemoteError(f"the broker does not let {self.user} use box {box}")
        answers: queue.Queue[Message] = queue.Queue()
        with self._lock:
            self._waiting[request.id] = (box, answers)
        try:
            self.send(box, request)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = answers.get(timeout=left)
                except queue.Empty:
                    break
                if on_event is not None:
                    on_event(msg)
                if msg.type in FINAL:
                    return msg
        finally:
            with self._lock:
                del self._waiting[request.id]
        raise RemoteError(f"no answer from box {box} within {timeout:.0f} s")
