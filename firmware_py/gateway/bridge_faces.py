"""The ENET bridge's TCP faces towards the workshop's tester: one protocol object per TCP
connection of the admitted tester (HSFZ on 6801, HSFZ control on 6811, DoIP on 13400) and, in
relay, its leg to the car (docs/enet.md). :class:`.bridge_net.Hub` owns them.

Messages are handled in arrival order; one that must wait for a voltage reading holds back those
behind it. A relayed frame goes to the car unchanged; a translated one is acknowledged here and
handed to the car side; a refused one is answered as the ECU would refuse it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import struct
from typing import TYPE_CHECKING, Any

from doipclient.messages import (
    AliveCheckResponse,
    DiagnosticMessage,
    DiagnosticMessageNegativeAcknowledgement,
    DiagnosticMessagePositiveAcknowledgement,
    GenericDoIPNegativeAcknowledge,
    RoutingActivationResponse,
)

from firmware_py.errors import FrameError
from firmware_py.gateway.bridge_guard import Refusal
from firmware_py.transport import doip_frames, hsfz
from firmware_py.transport.doip_frames import Message
from firmware_py.transport.hsfz import ControlWord, Frame
from firmware_py.transport.trace import DoipTrace, PcapWriter

if TYPE_CHECKING:
    from firmware_py.gateway.bridge_net import Hub

log = logging.getLogger(__name__)
HSFZ_FUNCTIONAL = 0xDF
"""BMW's functional (broadcast) ECU address"""


MAX_CONNECTIONS = 8
"""TCP connections of the admitted tester at once (ISTA opens a few); more are reset"""
MAX_BACKLOG = 32
"""messages read ahead of the one being handled before the tester's socket is read no further"""
MAX_OUTSTANDING = 16
"""translate: requests handed to the car's side and not yet finished before reading pauses"""


class _Endpoint(asyncio.Protocol):
    """One TCP connection of the bridge (tester's or car's side): no Nagle delay, its bytes in
    the session's pcap when there is one."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.trace: DoipTrace | None = None

    def _opened(self, transport: asyncio.Transport, pcap: PcapWriter | None) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if pcap is not None:
            self.trace = DoipTrace(
                None,
                transport.get_extra_info("sockname")[:2],
                transport.get_extra_info("peername")[:2],
                pcap=pcap,
            )

    def _send(self, data: bytes) -> bool:
        """Write ``data`` unless the connection is closing; whether it was written."""
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        if self.trace is not None:
            self.trace.tx(data)
        return True

    def _traced(self, data: bytes) -> None:
        if self.trace is not None:
            self.trace.rx(data)


class TesterConnection(_Endpoint):
    """One TCP connection of the admitted tester. Messages are handled in arrival order: one that
    must wait for a voltage reading holds back those behind it. Memory stays bounded: the
    tester's socket is not read while the car's side is not connected or cannot take more, while
    :data:`MAX_BACKLOG` messages wait, or (translate) :data:`MAX_OUTSTANDING` requests are
    under way; the car's socket is not read while the tester does not take its answers."""

    protocol = ""

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self.hub = hub
        self.pending: collections.deque[Any] = collections.deque()
        self.waiting = False
        self.car: CarLeg | None = None
        self.relay = hub.relay
        self.outstanding = 0
        self._holds: set[str] = set()

    def hold(self, reason: str, on: bool) -> None:
        """Stop (``on``) or allow reading the tester's socket for ``reason``."""
        before = bool(self._holds)
        if on:
            self._holds.add(reason)
        else:
            self._holds.discard(reason)
        if self.transport is None or self.transport.is_closing() or before == bool(self._holds):
            return
        if self._holds:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def pause_writing(self) -> None:  # the tester does not read its answers: stop the car's
        if self.car is not None and self.car.transport is not None:
            self.car.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.car is not None and self.car.transport is not None:
            self.car.transport.resume_reading()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        admitted = self.hub.admitted(transport.get_extra_info("peername"))
        if admitted and len(self.hub._connections) >= MAX_CONNECTIONS:
            log.warning("bridge: the tester opened more than %d connections", MAX_CONNECTIONS)
            admitted = False
        if not admitted:
            sock = transport.get_extra_info("socket")
            if sock is not None:  # a reset, not an orderly close: the connection is refused
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return
        self._opened(transport, self.hub.tester_pcap)
        self.hub._connections.add(self)
        self.hub.counters.connections += 1
        if self.relay and self.protocol:
            self.hold("car", True)  # until the car's side is connected
            asyncio.get_running_loop().create_task(self._connect_car())

    async def _connect_car(self) -> None:
        host, port = self.hub.car_address(self.protocol)
        try:
            await asyncio.get_running_loop().create_connection(lambda: CarLeg(self), host, port)
        except OSError as err:
            log.warning(
                "bridge: the car's %s at %s:%d does not answer: %s", self.protocol, host, port, err
            )
            self.close()
            return
        self.hold("car", False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.hub._connections.discard(self)
        if self.car is not None:
            self.car.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.car is not None:
            self.car.close()

    def write(self, data: bytes) -> None:
        if self._send(data):
            self.hub.counters.to_tester += 1

    def data_received(self, data: bytes) -> None:
        self._traced(data)
        try:
            self.pending.extend(self.decode(data))
        except FrameError as err:
            log.info(
                "bridge: the tester's %s stream is out of step (%s); closing", self.protocol, err
            )
            self.close()
            return
        self.pump()

    def pump(self) -> None:
        self.hold("backlog", len(self.pending) >= MAX_BACKLOG)
        while self.pending and not self.waiting:
            item = self.pending.popleft()
            request = self.uds_request(item)
            if request is not None and not self.hub.scope_allowed(request):
                self.refused(item, self.hub.guard.check(request, None, entitled=False))
                continue
            if request is not None and self.hub.guard.needs_voltage(request):
                self.waiting = True
                asyncio.get_running_loop().create_task(self._checked(item, request))
                return
            self.handle(item, request)
        self.hold("backlog", len(self.pending) >= MAX_BACKLOG)

    def ask_car(self, target: int, request: bytes, answer: Any) -> None:
        """translate: hand a request to the car's side; reading pauses while many are under way."""
        self.outstanding += 1
        self.hold("car", self.outstanding >= MAX_OUTSTANDING)
        self.hub.translation.request(target, request, answer, self._finished)
        self.hub.counters.to_car += 1
        self.hub.relayed(request)

    def _finished(self) -> None:
        self.outstanding -= 1
        self.hold("car", self.outstanding >= MAX_OUTSTANDING)

    def refused(self, item: Any, refusal: Refusal | None) -> None:
        assert refusal is not None
        self.hub.counters.refused += 1
        self.hub.on_refusal(refusal)
        self.refuse(item, refusal)

    async def _checked(self, item: Any, request: bytes) -> None:
        try:
            volts = await self.hub.voltage()
        except Exception as err:  # noqa: BLE001 - an unread voltage refuses, it does not crash
            log.warning("bridge: supply voltage not read: %s", err)
            volts = None
        refusal = self.hub.guard.check(request, volts)
        if refusal is not None:
            self.refused(item, refusal)
        else:
            self.handle(item, request)
        self.waiting = False
        self.pump()

    def to_car(self, data: bytes, request: bytes | None) -> None:
        assert self.car is not None
        self.car.write(data)
        self.hub.counters.to_car += 1
        self.hub.counters.bytes_to_car += len(data)
        if request is not None:
            self.hub.relayed(request)

    # -- what each protocol fills in -----------------------------------------------------------
    def decode(self, data: bytes) -> list[Any]:
        raise NotImplementedError

    def uds_request(self, item: Any) -> bytes | None:
        raise NotImplementedError

    def handle(self, item: Any, request: bytes | None) -> None:
        raise NotImplementedError

    def refuse(self, item: Any, refusal: Refusal) -> None:
        raise NotImplementedError

    def from_car(self, data: bytes) -> None:
        """relay: bytes from the car's side, forwarded whole frames at a time."""
        raise NotImplementedError


class CarLeg(_Endpoint):
    """relay: the car's side of one tester connection."""

    def __init__(self, tester: TesterConnection) -> None:
        super().__init__()
        self.tester = tester

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._opened(transport, self.tester.hub.car_pcap)
        self.tester.car = self

    def write(self, data: bytes) -> None:
        self._send(data)

    def data_received(self, data: bytes) -> None:
        self._traced(data)
        try:
            self.tester.from_car(data)
        except FrameError as err:
            log.warning("bridge: the car's stream is out of step (%s); closing", err)
            self.tester.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.tester.close()

    def pause_writing(self) -> None:  # the car takes no more for now: stop reading the tester
        self.tester.hold("car-busy", True)

    def resume_writing(self) -> None:
        self.tester.hold("car-busy", False)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class HsfzTester(TesterConnection):
    protocol = "hsfz"

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.decoder = hsfz.Decoder()
        self.car_decoder = hsfz.Decoder()

    def decode(self, data: bytes) -> list[Frame]:
        return self.decoder.feed(data)

    def uds_request(self, item: Frame) -> bytes | None:
        if item.control == ControlWord.DIAGNOSTIC_MESSAGE and item.addressed:
            return item.payload
        return None

    def handle(self, item: Frame, request: bytes | None) -> None:
        if self.relay:
            self.to_car(item.encode(), request)
            return
        if request is not None and len(request) > self.hub.translation.max_message:
            self.write(Frame(ControlWord.MESSAGE_TOO_LARGE, item.data[:2]).encode())
        elif request is not None and item.target == HSFZ_FUNCTIONAL:
            # one ISO-TP channel answers one ECU: functional requests are not translated
            self.write(Frame(ControlWord.INCORRECT_DESTINATION_ADDRESS, item.data[:2]).encode())
        elif request is not None and len(item.data) >= 3:
            self.write(hsfz.acknowledge(item).encode())
            source, target = item.source, item.target

            def answer(data: bytes) -> None:
                self.hub.guard.answered(data)
                self.write(hsfz.diagnostic_message(target, source, data).encode())

            self.ask_car(target, request, answer)
        else:
            self.write(hsfz_local_answer(self.hub, item).encode())

    def refuse(self, item: Frame, refusal: Refusal) -> None:
        self.write(
            hsfz.acknowledge(item).encode()
            + hsfz.diagnostic_message(item.target, item.source, refusal.response).encode()
        )

    def from_car(self, data: bytes) -> None:
        frames = self.car_decoder.feed(data)
        for frame in frames:
            if frame.control == ControlWord.DIAGNOSTIC_MESSAGE and frame.addressed:
                self.hub.guard.answered(frame.payload)
        if frames:
            self.write(b"".join(f.encode() for f in frames))


def hsfz_local_answer(hub: Hub, frame: Frame) -> Frame:
    """What the bridge answers itself to an HSFZ frame that is not a diagnostic message."""
    gateway = hub.identity.hsfz.diag_address if hub.identity.hsfz else hsfz.GATEWAY_ADDRESS
    if frame.control == ControlWord.ALIVE_CHECK:
        return Frame(ControlWord.ALIVE_CHECK, bytes([gateway]))
    if frame.control == ControlWord.VEHICLE_IDENTIFICATION and hub.identity.hsfz:
        return Frame(ControlWord.VEHICLE_IDENTIFICATION, hub.identity.hsfz.encode()[6:])
    if frame.control == ControlWord.TERMINAL15:
        return Frame(ControlWord.TERMINAL15, b"\x05")  # the car answered at open: ignition on
    if frame.control == ControlWord.DIAGNOSTIC_MESSAGE:
        return Frame(ControlWord.INCORRECT_FORMAT, frame.data[:2])
    return Frame(ControlWord.INCORRECT_CONTROL_WORD, frame.data[:2])


class HsfzControl(HsfzTester):
    """TCP 6811: identification, alive check and terminal 15 status, answered by the bridge."""

    protocol = ""  # never relayed

    def handle(self, item: Frame, request: bytes | None) -> None:
        self.write(hsfz_local_answer(self.hub, item).encode())


class DoipTester(TesterConnection):
    protocol = "doip"

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.decoder = doip_frames.Decoder()
        self.car_decoder = doip_frames.Decoder(max_payload=doip_frames.MAX_PAYLOAD * 16)
        self.tester_address: int | None = None  # translate: after routing activation

    def decode(self, data: bytes) -> list[Message]:
        return self.decoder.feed(data)

    def uds_request(self, item: Message) -> bytes | None:
        diag = item.diagnostic
        return diag[2] if diag is not None else None

    def send(self, message: Any, version: int) -> None:
        self.write(doip_frames.pack_message(message, version))

    def handle(self, item: Message, request: bytes | None) -> None:
        if self.relay:
            self.to_car(item.encode(), request)
            return
        gateway, version = self.hub.identity.doip_address, item.version
        if item.payload_type == doip_frames.ROUTING_ACTIVATION_REQUEST and len(item.payload) >= 7:
            source = struct.unpack_from(">H", item.payload)[0]
            ok = 0x0E00 <= source <= 0x0FFF
            self.tester_address = source if ok else None
            self.send(RoutingActivationResponse(source, gateway, 0x10 if ok else 0x00), version)
            if not ok:
                self.close()
        elif item.payload_type == doip_frames.ALIVE_CHECK_REQUEST:
            self.send(AliveCheckResponse(gateway), version)
        elif item.payload_type == doip_frames.ALIVE_CHECK_RESPONSE:
            pass
        elif (diag := item.diagnostic) is not None:
            source, target, data = diag
            if source != self.tester_address:
                self.send(DiagnosticMessageNegativeAcknowledgement(target, source, 0x02), version)
                return
            if target > 0xFF or target == HSFZ_FUNCTIONAL:  # functional: not translated
                self.send(DiagnosticMessageNegativeAcknowledgement(target, source, 0x03), version)
                return
            if len(data) > self.hub.translation.max_message:
                self.send(DiagnosticMessageNegativeAcknowledgement(target, source, 0x04), version)
                return
            self.send(DiagnosticMessagePositiveAcknowledgement(target, source, 0x00), version)

            def answer(response: bytes) -> None:
                self.hub.guard.answered(response)
                self.send(DiagnosticMessage(target, source, response), version)

            self.ask_car(target, data, answer)
        else:
            self.send(GenericDoIPNegativeAcknowledge(0x01), version)  # unknown payload type

    def refuse(self, item: Message, refusal: Refusal) -> None:
        source, target, _ = item.diagnostic or (0, 0, b"")
        ack = DiagnosticMessagePositiveAcknowledgement(target, source, 0x00)
        answer = DiagnosticMessage(target, source, refusal.response)
        self.write(
            doip_frames.pack_message(ack, item.version)
            + doip_frames.pack_message(answer, item.version)
        )

    def from_car(self, data: bytes) -> None:
        messages = self.car_decoder.feed(data)
        for message in messages:
            if (diag := message.diagnostic) is not None:
                self.hub.guard.answered(diag[2])
        if messages:
            self.write(b"".join(m.encode() for m in messages))
