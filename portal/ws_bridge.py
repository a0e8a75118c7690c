"""The portal's WebSocket bridge: boxes on networks that block the MQTT port connect here over
HTTPS (port 443 in a real portal) and the bridge relays their frames to the broker, confined to
the box's own topics; the portal's users keep talking MQTT and do not see the difference.

A box proves who it is with the client certificate it would show the broker (TLS, verified
against the portal's CA and its revocation list crl.pem; its common name is the device id). For each connected box the bridge
holds one MQTT 5 session to the broker under its own identity (the ACL gives the bridge every
box's topics; the bridge gives each box only its own): it publishes the box's state (retained:
the state the box sends, firmware_py/cloud/box_state.py, checked; a bare online one until it
does) with an offline last will, forwards the box's requests topic to the box, and publishes what
the box sends on its response and outbox topics. Each direction is acknowledged end to end: the
box's frame when the broker has it, the broker's message when the box has taken it (paho's
manual acknowledgement), so the bridge adds no way to lose a message. Frame format in
:mod:`firmware_py.cloud.ws_link` and docs/remote-protocol.md.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from aiohttp import WSMsgType, web
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_py import strict_json
from firmware_py.cloud import box_state, topics
from firmware_py.cloud.mqtt_link import disable_nagle
from firmware_py.cloud.schema import ProtocolError, decode
from firmware_py.cloud.ws_link import MAX_FRAME
from portal import pki

log = logging.getLogger(__name__)
PATH = "/vci/box"


def common_name(peercert: dict[str, Any] | None) -> str | None:
    """The subject's common name of a verified peer certificate (``ssl`` gives nested tuples)."""
    for rdn in (peercert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class FrameError(ValueError):
    pass


class BoxConnection:
    """One box's WebSocket and the bridge's MQTT session for it."""

    def __init__(self, bridge: Bridge, box: str, ws: web.WebSocketResponse) -> None:
        self.bridge, self.box, self.ws = bridge, box, ws
        self.loop = asyncio.get_running_loop()
        self._pending: dict[int, int] = {}  # MQTT mid -> the box's seq
        self._delivered: set[int] = set()  # broker messages sent to the box, not yet taken
        self.done = asyncio.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"ws-{box}",
            protocol=mqtt.MQTTv5,
            manual_ack=True,  # the broker's message is acknowledged when the box has it
        )
        bridge.tls(self.client)
        self.client.max_queued_messages_set(10_000)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._state = box_state.BoxState(True)
        """the box's own state once it sent one (its release, its car)"""
        self.client.will_set(
            topics.state(box), box_state.BoxState(False).encode(), qos=1, retain=True
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    async def run(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 86400  # requests queued while the box is away wait
        self.client.connect_async(
            self.bridge.broker_host,
            self.bridge.broker_port,
            keepalive=20,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.TEXT:
                    break
                try:
                    self._from_box(msg.data)
                except FrameError as err:
                    seq = _seq_of(msg.data)
                    log.warning("box %s: refused a frame: %s", self.box, err)
                    await self.ws.send_json(
                        {"refused": seq, "error": {"error": "protocol_error", "message": str(err)}}
                    )
        finally:
            await self.loop.run_in_executor(None, self._close_session)
            self.done.set()

    def _close_session(self) -> None:
        if self.client.is_connected():
            offline = box_state.BoxState(False, self._state.version).encode()
            info = self.client.publish(topics.state(self.box), offline, qos=1, retain=True)
            info.wait_for_publish(2)
        self.client.disconnect()  # a clean disconnect: the broker drops the will
        self.client.loop_stop()

    # -- box -> broker ---------------------------------------------------------------------------
    def _from_box(self, text: str) -> None:
        try:
            frame = strict_json.loads(text, max_bytes=MAX_FRAME)
        except strict_json.StrictJsonError as err:
            raise FrameError(f"frame is not JSON: {err}") from err
        if not isinstance(frame, dict):
            raise FrameError("frame is not an object")
        if "ack_mid" in frame:
            mid = frame["ack_mid"]
            if not isinstance(mid, int) or mid not in self._delivered:
                raise FrameError(f"ack_mid {mid!r} is not a message the box was sent")
            self._delivered.discard(mid)
            self.client.ack(mid, 1)
            return
        seq, topic, corr, payload = (frame.get(k) for k in ("seq", "topic", "corr", "payload"))
        if not isinstance(seq, int):
            raise FrameError("seq missing or not a number")
        if not isinstance(topic, str):
            raise FrameError("topic missing or not text")
        if "+" in topic or "#" in topic:
            raise FrameError("topic has wildcards")
        parsed = topics.parse(topic)
        if parsed is None or parsed[0] != self.box or parsed[1] not in ("outbox", "res", "state"):
            raise FrameError(f"box {self.box} may not publish to {topic!r}")
        if not isinstance(payload, str):
            raise FrameError("payload missing or not text")
        if parsed[1] == "state":
            self._publish_state(seq, payload)
            return
        if corr is not None and (not isinstance(corr, str) or len(corr) > 64):
            raise FrameError("corr is not text of at most 64 characters")
        try:
            decode(payload.encode())  # only well-formed envelopes reach the portal
        except ProtocolError as err:
            raise FrameError(str(err)) from err
        props = Properties(PacketTypes.PUBLISH)
        if corr:
            props.CorrelationData = corr.encode()
        info = self.client.publish(topic, payload.encode(), qos=1, properties=props)
        self._pending[info.mid] = seq

    def _publish_state(self, seq: int, payload: str) -> None:
        """The box's own state, checked; retained, and again whenever the bridge reconnects.
        A box says it is online while its WebSocket is open: an offline from it is not taken."""
        try:
            state = box_state.parse(payload.encode())
        except ProtocolError as err:
            raise FrameError(str(err)) from err
        if not state.online:
            raise FrameError("a connected box is online")
        self._state = state
        info = self.client.publish(topics.state(self.box), state.encode(), qos=1, retain=True)
        self._pending[info.mid] = seq

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any
    ) -> None:
        self.loop.call_soon_threadsafe(self._published, mid)

    def _published(self, mid: int) -> None:
        seq = self._pending.pop(mid, None)
        if seq is not None and not self.ws.closed:
            asyncio.ensure_future(self.ws.send_json({"ack": seq}))

    # -- broker -> box ---------------------------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.warning("box %s: the broker refused the bridge: %s", self.box, reason_code)
            return
        disable_nagle(client)
        client.subscribe(topics.all_requests(self.box), qos=1)
        client.publish(topics.state(self.box), self._state.encode(), qos=1, retain=True)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        corr = getattr(props, "CorrelationData", None)
        frame = {
            "mid": msg.mid,
            "topic": msg.topic,
            "response": getattr(props, "ResponseTopic", None),
            "corr": corr.decode("utf-8", "replace") if corr else None,
            "payload": msg.payload.decode("utf-8", "replace"),
        }
        self.loop.call_soon_threadsafe(self._to_box, frame)

    def _to_box(self, frame: dict[str, Any]) -> None:
        if not self.ws.closed:
            self._delivered.add(frame["mid"])
            asyncio.ensure_future(self.ws.send_json(frame))


def _seq_of(text: str) -> int | None:
    try:
        seq = strict_json.loads(text, max_bytes=MAX_FRAME).get("seq")
        return seq if isinstance(seq, int) else None
    except (strict_json.StrictJsonError, AttributeError):
        return None


class Bridge:
    def __init__(self, broker_host: str, broker_port: int, pki: Path, identity: str) -> None:
        self.broker_host, self.broker_port = broker_host, broker_port
        self.pki, self.identity = pki, identity
        self.boxes: dict[str, BoxConnection] = {}

    def tls(self, client: mqtt.Client) -> None:
        client.tls_set(
            ca_certs=str(self.pki / "ca.pem"),
            certfile=str(self.pki / f"{self.identity}.pem"),
            keyfile=str(self.pki / f"{self.identity}.key"),
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )

    def server_ssl(self, cert: Path, key: Path) -> ssl.SSLContext:
        """TLS for the boxes: our certificate, and theirs required (signed by the portal's CA)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.pki / "ca.pem"))
        ctx.load_cert_chain(str(cert), str(key))
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(PATH, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        box = common_name(transport.get_extra_info("peercert") if transport else None)
        if not box:
            raise web.HTTPForbidden(text="a box certificate is required")
        ssl_object = transport.get_extra_info("ssl_object") if transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        # the revocation list is read at every connection (the broker's is read on SIGHUP):
        # a revoked box is refused from the moment vci-portal box revoke wrote it
        if not der or pki.is_revoked(self.pki, x509.load_der_x509_certificate(der)):
            log.warning("box %s refused: its certificate is revoked", box)
            raise web.HTTPForbidden(text="this box's certificate is revoked")
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_FRAME)
        await ws.prepare(request)
        old = self.boxes.get(box)
        if old is not None:  # the box came back before its old connection timed out
            await old.ws.close(code=4000, message=b"replaced by a newer connection")
            await old.done.wait()  # its "offline" goes out before our "online"
        connection = BoxConnection(self, box, ws)
        self.boxes[box] = connection
        log.info("box %s connected from %s", box, request.remote)
        try:
            await connection.run()
        finally:
            if self.boxes.get(box) is connection:
                del self.boxes[box]
            log.info("box %s disconnected (%s)", box, ws.close_code)
        return ws


async def serve(
    bridge: Bridge, host: str, port: int, cert: Path, key: Path, ready: Any = print
) -> None:
    runner = web.AppRunner(bridge.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=bridge.server_ssl(cert, key))
    await site.start()
    ready(f"vci-portal ws-bridge ready wss://{host}:{port}{PATH}")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
