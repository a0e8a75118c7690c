"""The portal link over MQTT 5 (paho-mqtt 2.x): TLS with the box's client certificate, a retained
online state with an ``offline`` last will, requests with MQTT 5 response topic and correlation
data, a persistent session (the broker keeps what is sent to the box while it is away, and paho
resends what the box sent that the broker had not acknowledged), reconnect with back-off."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware_py.cloud import topics
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
        self.client.will_set(topics.state(device_id), b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
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
                topics.state(self.device), b"offline", qos=1, retain=True
            ).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, corr: bytes | None = None) -> None:
        props = Properties(PacketTypes.PUBLISH)
        if corr:
            props.CorrelationData = corr
        self.client.publish(topic, payload, qos=1, properties=props)

    # -- paho callbacks (its network thread) ---------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.warning("portal broker refused the connection: %s", reason_code)
            return
        disable_nagle(client)
        client.subscribe(topics.all_requests(self.device), qos=1)
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
        self.loop.call_soon_threadsafe(self.received, msg.topic, bytes(msg.payload), response, corr)
