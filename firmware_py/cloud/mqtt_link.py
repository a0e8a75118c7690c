"""The portal link over MQTT 5 (paho-mqtt 2.x): TLS with the box's client certificate, a retained
state (online, release, car: firmware_py/cloud/box_state.py) with an offline last will, requests with MQTT 5 response topic and correlation
data, a persistent session (the broker keeps what is sent to the box while it is away, and paho
resends what the box sent that the broker had not acknowledged), reconnect with back-off."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import sys
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_py.cloud import topics
from firmware_py.cloud.box_state import BoxState
from firmware_py.cloud.portal_link import PortalLink
from firmware_py.config import CloudConfig

log = logging.getLogger(__name__)
SESSION_EXPIRY = 7 * 86400


def disable_nagle(client: mqtt.Client) -> None:
    """paho-mqtt (2.2) leaves Nagle's algorithm on: a small QoS 1 message then waits for the
    peer's delayed ACK, about 40 ms on Linux (eclipse-mosquitto/mosquitto#433 for the broker's
    side, which broker/mosquitto.conf.in turns off with set_tcp_nodelay). Call from on_connect."""
    sock = client.socket()
    if isinstance(sock, socket.socket):  # ssl.SSLSocket too
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as err:
            log.debug("TCP_NODELAY: %s", err)


class _PahoErrors(logging.Logger):
    """paho's error log for one client, kept as the reason of the next disconnect: paho reports
    a socket's error (a TLS alert such as "certificate revoked") only to its logger, and its
    disconnect reason code says "unspecified error". A logger not in logging's registry, at
    ERROR: paho's per-packet debug lines are not even formatted."""

    def __init__(self) -> None:
        super().__init__("paho", logging.ERROR)
        self.last: str | None = None

    def handle(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()


class MqttLink(PortalLink):
    carrier = "mqtt"

    def __init__(self, gateway: Any, device_id: str, cfg: CloudConfig) -> None:
        super().__init__(gateway, device_id, cfg)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"box-{device_id}", protocol=mqtt.MQTTv5
        )
        # events of a job that goes on while the link is down wait here
        self.client.max_queued_messages_set(10_000)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.will_set(
            topics.state(device_id), self.state(online=False).encode(), qos=1, retain=True
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self._failure: str | None = None
        """the last reason a connection failed, logged once until it changes or a connect works"""
        self._up = False
        self._paho_errors = _PahoErrors()
        self.client.enable_logger(self._paho_errors)
        self.client.on_message = self._on_message

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
        self._start_tasks()

    async def stop(self) -> None:
        await self._stop_tasks()
        if self.connected.is_set():
            self.client.publish(
                topics.state(self.device), self.state(online=False).encode(), qos=1, retain=True
            ).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, corr: bytes | None = None) -> None:
        props = Properties(PacketTypes.PUBLISH)
        if corr:
            props.CorrelationData = corr
        self.client.publish(topic, payload, qos=1, properties=props)

    def publish_state(self, state: BoxState) -> None:
        self.client.publish(topics.state(self.device), state.encode(), qos=1, retain=True)

    # -- paho callbacks (its network thread) ---------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.warning("portal broker refused the connection: %s", reason_code)
            return
        self._failure = None
        self._up = True
        disable_nagle(client)
        client.subscribe(topics.all_requests(self.device), qos=1)
        # the state with the car is read on the gateway's loop (the vehicle's data live there)
        self.loop.call_soon_threadsafe(self._came_up)
        log.info("connected to the portal broker %s:%d", self.cfg.broker_host, self.cfg.broker_port)

    def _came_up(self) -> None:
        self.publish_state(self.state())
        self.connected.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        """A connection attempt failed before MQTT (TCP; TLS with TLS 1.2). paho passes no error;
        it calls this within its ``except OSError`` around the attempt, so the error is the one
        being handled."""
        err = sys.exc_info()[1]
        self._failed("cannot link", str(err) if err is not None else "no reason given")

    def _failed(self, what: str, reason: str) -> None:
        """Log why the link is not up, once per reason (the retries every few seconds would
        fill the journal), with what to do where the reason says it."""
        if reason == self._failure:
            log.debug("portal broker: %s (%s) again", what, reason)
            return
        self._failure = reason
        hint = ""
        if "revoked" in reason:
            hint = ": the portal has revoked this box's certificate; ask the portal's operator"
        elif "SSL" in reason or "certificate" in reason:
            hint = ": check the box's clock, [cloud] ca_file and its certificate (vci enrol)"
        log.warning(
            "portal broker %s:%d: %s (%s)%s; trying again",
            self.cfg.broker_host, self.cfg.broker_port, what, reason, hint,
        )  # fmt: skip

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.loop.call_soon_threadsafe(self.connected.clear)
        reason = str(reason_code)
        if self._paho_errors.last:  # the socket's error: paho's reason code says only "unspecified"
            reason += f": {self._paho_errors.last}"
            self._paho_errors.last = None
        if self._up:
            self._up = False
            self._failure = reason
            log.warning("portal link down (%s); jobs go on, events follow after reconnect", reason)
        else:  # closed before CONNACK: with TLS 1.3 the broker refuses a certificate here
            self._failed("cannot link", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        response = getattr(props, "ResponseTopic", None)
        corr = getattr(props, "CorrelationData", None)
        self.loop.call_soon_threadsafe(self.received, msg.topic, bytes(msg.payload), response, corr)
