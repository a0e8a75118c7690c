"""The portal link over a WebSocket (aiohttp), for networks that block the MQTT port: the box
connects to the portal's bridge (``vci-portal ws-bridge``) over TLS with the same client
certificate it would show the broker; the bridge relays to the broker under the box's own topics,
so the portal sees the same messages either way (docs/remote-protocol.md, "WebSocket carrier").

Frames are JSON text. Box to bridge: ``{"seq", "topic", "corr", "payload"}`` (payload: the
envelope); the bridge answers ``{"ack": seq}`` once the broker has the message, or
``{"refused": seq, "error": {...}}``. Bridge to box: ``{"mid", "topic", "response", "corr",
"payload"}``, which the box acknowledges with ``{"ack_mid": mid}`` once it has taken it. What is
not acknowledged is sent again after a reconnect, so both directions are at least once, like
MQTT QoS 1; envelope ids make the repeats harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections import OrderedDict
from typing import Any

import aiohttp

from firmware_py import strict_json
from firmware_py.cloud.portal_link import PortalLink
from firmware_py.cloud.schema import MAX_MESSAGE
from firmware_py.config import CloudConfig
from firmware_py.gateway.supervise import supervised

log = logging.getLogger(__name__)
MAX_FRAME = MAX_MESSAGE + 4096
"""an envelope and its frame fields"""
MAX_UNACKED = 10_000
"""frames kept for resending while the link is down (the outbox keeps what must not be lost)"""


class WsLink(PortalLink):
    carrier = "websocket"

    def __init__(self, gateway: Any, device_id: str, cfg: CloudConfig) -> None:
        super().__init__(gateway, device_id, cfg)
        self._unacked: OrderedDict[int, str] = OrderedDict()
        self._acks: list[int] = []
        self._seq = 0
        self._wake = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.cfg.ca_file))
        ctx.load_cert_chain(str(self.cfg.cert_file), str(self.cfg.key_file))
        return ctx

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._runner = supervised(self._run, "portal link: websocket")
        self._start_tasks()

    async def stop(self) -> None:
        await self._stop_tasks()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def publish(self, topic: str, payload: bytes, corr: bytes | None = None) -> None:
        self._seq += 1
        frame = {
            "seq": self._seq,
            "topic": topic,
            "corr": corr.decode("utf-8", "replace") if corr else None,
            "payload": payload.decode(),
        }
        self._unacked[self._seq] = json.dumps(frame, separators=(",", ":"))
        if len(self._unacked) > MAX_UNACKED:
            seq, _ = self._unacked.popitem(last=False)
            log.warning(
                "portal link down too long: dropped frame %d (the outbox keeps results)", seq
            )
        self._wake.set()

    async def _run(self) -> None:
        assert self._session is not None
        delay = 1.0
        while True:
            try:
                async with self._session.ws_connect(
                    self.cfg.ws_url, ssl=self._ssl(), heartbeat=20, max_msg_size=MAX_FRAME
                ) as ws:
                    log.info("connected to the portal bridge %s", self.cfg.ws_url)
                    delay = 1.0
                    self.publish_state(self.state())  # the bridge keeps it retained
                    self.connected.set()
                    sender = asyncio.create_task(self._send(ws))
                    try:
                        async for msg in ws:
                            if msg.type == aiohttp.WSMsgType.TEXT:
                                self._frame(msg.data)
                            else:
                                break
                    finally:
                        sender.cancel()
                        await asyncio.gather(sender, return_exceptions=True)
                log.warning(
                    "portal bridge closed the link (%s); jobs go on, events follow after reconnect",
                    ws.close_code,
                )
            except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as err:
                log.warning("portal bridge %s: %s", self.cfg.ws_url, err)
            finally:
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _send(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The only writer of a connection: first what the last one left unacknowledged, then
        whatever comes, in order."""
        sent = 0
        # acknowledgements belong to the bridge session that sent the messages; a new one has the
        # broker deliver the unacknowledged ones again (and the box drops them by id)
        self._acks.clear()
        while True:
            self._wake.clear()
            for mid in self._acks:
                await ws.send_str(json.dumps({"ack_mid": mid}))
            self._acks.clear()
            for seq, text in list(self._unacked.items()):
                if seq > sent:
                    await ws.send_str(text)
                    sent = seq
            await self._wake.wait()

    def _frame(self, text: str) -> None:
        """One frame from the bridge; a malformed one is logged and dropped, never raised (the
        link's reader must outlive whatever the other side sends)."""
        try:
            frame = strict_json.obj(strict_json.loads(text, max_bytes=MAX_FRAME), "the frame")
            if "ack" in frame:
                self._unacked.pop(_seq(frame, "ack"), None)
            elif "refused" in frame:
                self._unacked.pop(_seq(frame, "refused"), None)
                log.warning("portal bridge refused a frame: %s", frame.get("error"))
            elif "mid" in frame:
                mid = _seq(frame, "mid")
                topic = frame.get("topic")
                if isinstance(topic, str) and self.requester(topic) is not None:
                    corr, response = frame.get("corr"), frame.get("response")
                    self.received(
                        topic,
                        str(frame.get("payload", "")).encode(),
                        response if isinstance(response, str) else None,
                        corr.encode() if isinstance(corr, str) else None,
                    )
                self._acks.append(mid)  # taken (a refusal went back to the sender)
                self._wake.set()
            else:
                raise strict_json.StrictJsonError("frame has neither ack, refused nor mid")
        except strict_json.StrictJsonError as err:
            log.warning("dropped a malformed frame from the portal bridge: %s", err)


def _seq(frame: dict[str, Any], key: str) -> int:
    """A frame's sequence number or message id: a whole number (not text, not 1e400)."""
    return int(strict_json.number(frame, key, low=0, high=2**63 - 1, integer=True))
