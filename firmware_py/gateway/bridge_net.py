"""The ENET bridge's sockets on the gateway's event loop: what the workshop's tester sees on the
box's Wi-Fi side (HSFZ on TCP 6801, TCP and UDP 6811; DoIP on TCP and UDP 13400), and how each of
its diagnostic messages reaches the car (docs/enet.md, "The box as an ENET bridge").

Only the admitted client address gets anything: a datagram from another address is ignored, a
TCP connection from another address is reset at once. Two ways to the car:

- **relay** (the box has the car's ENET): every tester connection gets its own connection to the
  car, HSFZ to HSFZ, DoIP to DoIP; each frame is parsed, checked by the :class:`.Guard` and
  forwarded unchanged, or refused with the ECU-shaped answer ``7F <sid> 22``;
- **translate** (the box has only D-CAN): the bridge is the tester's gateway; it acknowledges
  each message itself and hands the UDS bytes to ``car.request`` (ISO-TP with BMW extended
  addressing on the vehicle worker), whose answers go back to the tester.

Both sides are traced as pcap (tester side: one file per session, every connection in it).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from doipclient.messages import (
    AliveCheckResponse,
    DiagnosticMessageNegativeAcknowledgement,
    DiagnosticMessagePositiveAcknowledgement,
    RoutingActivationResponse,
    VehicleIdentificationResponse,
)

from firmware_py.errors import FrameError
from firmware_py.gateway.bridge_guard import Guard, Refusal, classified, required_scope
from firmware_py.gateway.tariffs import Scope
from firmware_py.transport import doip_frames, hsfz
from firmware_py.transport.doip_frames import Message
from firmware_py.transport.hsfz import ControlWord, Frame, HsfzIdentity
from firmware_py.transport.trace import LINKTYPE_IPV4, DoipTrace, PcapWriter
from firmware_py.uds.raw_requests import RawClass

log = logging.getLogger(__name__)
GATEWAY_DOIP_ADDRESS = 0x0010
HSFZ_FUNCTIONAL = 0xDF
"""BMW's functional (broadcast) ECU address"""
TRACE_FLUSH = 0.25
"""seconds between flushes of a session's traces (and at its end): a relay writes in batches"""
HSFZ_DIAG_PORT, HSFZ_CONTROL_PORT = hsfz.DIAG_PORT, hsfz.CONTROL_PORT


@dataclass(frozen=True)
class BridgeIdentity:
    """What the bridge answers to identification: the car's own answers (relay) or an identity
    made from the car's VIN and the box's MAC address (translate)."""

    vin: str
    doip_address: int = GATEWAY_DOIP_ADDRESS
    eid: bytes = b"\0" * 6
    gid: bytes = b"\0" * 6
    hsfz: HsfzIdentity | None = None
    """None: the car did not answer HSFZ, the bridge offers no HSFZ"""
    doip: bool = True
    """False: the car did not answer DoIP, the bridge offers no DoIP"""


@dataclass(frozen=True)
class BridgePorts:
    hsfz: int = HSFZ_DIAG_PORT
    hsfz_control: int = HSFZ_CONTROL_PORT
    doip: int = 13400


class CarSide(Protocol):
    """How diagnostic messages reach the car."""

    mode: str
    """``relay`` or ``translate``"""
    max_message: int
    """translate: the longest UDS message the car's bus carries (longer: message too large)"""

    def address(self, protocol: str) -> tuple[str, int]:
        """relay: the car's (host, port) for ``hsfz`` or ``doip``."""
        ...

    def request(self, target: int, payload: bytes, answer: Callable[[bytes], None]) -> None:
        """translate: send ``payload`` to the ECU at ``target``; ``answer`` is called on the
        loop with each answer (a response pending first, then the response)."""
        ...


@dataclass
class Counters:
    to_car: int = 0
    to_tester: int = 0
    refused: int = 0
    turned_away: int = 0
    connections: int = 0
    bytes_to_car: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Hub:
    """One bridge session's sockets and shared state."""

    client: str
    listen_host: str
    ports: BridgePorts
    car: CarSide
    guard: Guard
    identity: BridgeIdentity
    voltage: Callable[[], Awaitable[float | None]]
    on_refusal: Callable[[Refusal], None]
    entitled: Callable[[Scope], bool] = lambda scope: True
    """whether the session's tickets include a scope beyond diagnosis (a raw request's class)"""
    tester_pcap: PcapWriter | None = None
    car_pcap: PcapWriter | None = None
    counters: Counters = field(default_factory=Counters)
    changes: collections.Counter[str] = field(default_factory=collections.Counter)
    """requests relayed that are not reads, by what they do (for the session log)"""
    bound: dict[str, int] = field(default_factory=dict)
    _servers: list[Any] = field(default_factory=list)
    _connections: set[_TesterConnection] = field(default_factory=set)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> dict[str, int]:
        """Listen on the Wi-Fi side; returns the bound ports (a configured 0 takes a free one)."""
        if self.identity.hsfz is not None:
            self.bound["hsfz"] = await self._tcp(self.ports.hsfz, lambda: _HsfzTester(self))
            self.bound["hsfz_control"] = await self._tcp_udp(
                self.ports.hsfz_control,
                lambda: _HsfzControl(self),
                lambda: _Udp(self, self._hsfz_identification),
            )
        if self.identity.doip:
            self.bound["doip"] = await self._tcp_udp(
                self.ports.doip, lambda: _DoipTester(self), lambda: _Udp(self, self._doip_udp)
            )
        return dict(self.bound)

    async def stop(self) -> None:
        for conn in list(self._connections):
            conn.close()
        for server in self._servers:
            server.close()
        for server in self._servers:
            if isinstance(server, asyncio.base_events.Server):
                await server.wait_closed()
        self._servers.clear()

    async def _tcp(self, port: int, factory: Callable[[], asyncio.Protocol]) -> int:
        server = await asyncio.get_running_loop().create_server(
            factory, self.listen_host, port, reuse_address=True
        )
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _tcp_udp(
        self,
        port: int,
        tcp: Callable[[], asyncio.Protocol],
        udp: Callable[[], asyncio.DatagramProtocol],
    ) -> int:
        """TCP and UDP on the same port number (both protocols use one port in the standards)."""
        loop = asyncio.get_running_loop()
        for _ in range(20):
            server = await loop.create_server(tcp, self.listen_host, port, reuse_address=True)
            bound = int(server.sockets[0].getsockname()[1])
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    udp, local_addr=(self.listen_host, bound)
                )
            except OSError:
                server.close()
                await server.wait_closed()
                if port:
                    raise
                continue
            self._servers += [server, transport]
            return bound
        raise OSError("no free port for TCP and UDP together")

    def relayed(self, request: bytes) -> None:
        """A request went to the car: follow downloads, count what changes the car."""
        self.guard.sent(request)
        raw_class, what = classified(request)
        if raw_class is not RawClass.READ:
            self.changes[f"{raw_class.value}: {what}"] += 1

    def scope_allowed(self, request: bytes) -> bool:
        if self.guard.continues_download(request):
            return True
        scope = required_scope(request)
        return scope is Scope.DIAGNOSIS or self.entitled(scope)  # diagnosis: the session's own

    def admitted(self, peer: Any) -> bool:
        if peer and peer[0] == self.client:
            return True
        self.counters.turned_away += 1
        return False

    # -- identification on UDP -----------------------------------------------------------------
    def _hsfz_identification(self, data: bytes) -> bytes | None:
        try:
            frame = hsfz.decode_datagram(data)
        except FrameError:
            return None
        if frame.control == ControlWord.VEHICLE_IDENTIFICATION and self.identity.hsfz:
            return self.identity.hsfz.encode()
        return None

    def _doip_udp(self, data: bytes) -> bytes | None:
        try:
            message = doip_frames.decode_datagram(data)
        except FrameError:
            return None
        ident = self.identity
        wanted = message.payload_type == 0x0001 or (
            (message.payload_type == 0x0002 and message.payload == ident.eid)
            or (message.payload_type == 0x0003 and message.payload == ident.vin.encode())
        )
        if not wanted:
            return None
        version = message.version if message.version in doip_frames.SUPPORTED_VERSIONS else 0x02
        answer = VehicleIdentificationResponse(
            ident.vin, ident.doip_address, ident.eid, ident.gid, 0x00
        )
        return doip_frames.pack_message(answer, version)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, hub: Hub, answer: Callable[[bytes], bytes | None]) -> None:
        self.hub, self.answer = hub, answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.hub.admitted(addr):
            return  # a client that was not admitted gets nothing
        reply = self.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


# -- the tester's TCP connections ---------------------------------------------------------------


class _TesterConnection(asyncio.Protocol):
    """One TCP connection of the admitted tester. Messages are handled in arrival order: one that
    must wait for a voltage reading holds back those behind it."""

    protocol = ""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.transport: asyncio.Transport | None = None
        self.trace: DoipTrace | None = None
        self.pending: collections.deque[Any] = collections.deque()
        self.waiting = False
        self.car: _CarLeg | None = None
        self.relay = hub.car.mode == "relay"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if not self.hub.admitted(transport.get_extra_info("peername")):
            if sock is not None:  # a reset, not an orderly close: the connection is refused
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            self.transport = None
            return
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.hub._connections.add(self)
        self.hub.counters.connections += 1
        if self.hub.tester_pcap is not None:
            self.trace = DoipTrace(
                None,
                transport.get_extra_info("sockname")[:2],
                transport.get_extra_info("peername")[:2],
                pcap=self.hub.tester_pcap,
            )
        if self.relay and self.protocol:
            transport.pause_reading()  # until the car's side is connected
            asyncio.get_running_loop().create_task(self._connect_car())

    async def _connect_car(self) -> None:
        host, port = self.hub.car.address(self.protocol)
        try:
            await asyncio.get_running_loop().create_connection(lambda: _CarLeg(self), host, port)
        except OSError as err:
            log.warning(
                "bridge: the car's %s at %s:%d does not answer: %s", self.protocol, host, port, err
            )
            self.close()
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

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
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.hub.counters.to_tester += 1
            if self.trace is not None:
                self.trace.tx(data)

    def data_received(self, data: bytes) -> None:
        if self.trace is not None:
            self.trace.rx(data)
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


class _CarLeg(asyncio.Protocol):
    """relay: the car's side of one tester connection."""

    def __init__(self, tester: _TesterConnection) -> None:
        self.tester = tester
        self.transport: asyncio.Transport | None = None
        self.trace: DoipTrace | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tester.hub.car_pcap is not None:
            self.trace = DoipTrace(
                None,
                transport.get_extra_info("sockname")[:2],
                transport.get_extra_info("peername")[:2],
                pcap=self.tester.hub.car_pcap,
            )
        self.tester.car = self

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            if self.trace is not None:
                self.trace.tx(data)

    def data_received(self, data: bytes) -> None:
        if self.trace is not None:
            self.trace.rx(data)
        try:
            self.tester.from_car(data)
        except FrameError as err:
            log.warning("bridge: the car's stream is out of step (%s); closing", err)
            self.tester.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.tester.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _HsfzTester(_TesterConnection):
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
        if request is not None and len(request) > self.hub.car.max_message:
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

            self.hub.car.request(target, request, answer)
            self.hub.counters.to_car += 1
            self.hub.relayed(request)
        else:
            self.write(_hsfz_local_answer(self.hub, item).encode())

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


def _hsfz_local_answer(hub: Hub, frame: Frame) -> Frame:
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


class _HsfzControl(_HsfzTester):
    """TCP 6811: identification, alive check and terminal 15 status, answered by the bridge."""

    protocol = ""  # never relayed

    def handle(self, item: Frame, request: bytes | None) -> None:
        self.write(_hsfz_local_answer(self.hub, item).encode())


class _DoipTester(_TesterConnection):
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
            if len(data) > self.hub.car.max_message:
                self.send(DiagnosticMessageNegativeAcknowledgement(target, source, 0x04), version)
                return
            self.send(DiagnosticMessagePositiveAcknowledgement(target, source, 0x00), version)

            def answer(response: bytes) -> None:
                self.hub.guard.answered(response)
                self.write(
                    doip_frames.pack(
                        doip_frames.DIAGNOSTIC_MESSAGE,
                        struct.pack(">HH", target, source) + response,
                        version,
                    )
                )

            self.hub.car.request(target, data, answer)
            self.hub.counters.to_car += 1
            self.hub.relayed(data)
        else:
            self.write(doip_frames.pack(doip_frames.GENERIC_NACK, b"\x01", version))

    def refuse(self, item: Message, refusal: Refusal) -> None:
        source, target, _ = item.diagnostic or (0, 0, b"")
        ack = DiagnosticMessagePositiveAcknowledgement(target, source, 0x00)
        self.write(
            doip_frames.pack_message(ack, item.version)
            + doip_frames.pack(
                doip_frames.DIAGNOSTIC_MESSAGE,
                struct.pack(">HH", target, source) + refusal.response,
                item.version,
            )
        )

    def from_car(self, data: bytes) -> None:
        messages = self.car_decoder.feed(data)
        for message in messages:
            if (diag := message.diagnostic) is not None:
                self.hub.guard.answered(diag[2])
        if messages:
            self.write(b"".join(m.encode() for m in messages))


def session_pcaps(tester: Any, car: Any) -> tuple[PcapWriter | None, PcapWriter | None]:
    """The tester side's and the car side's pcap writers of one session (paths or None)."""
    return (
        PcapWriter(tester, LINKTYPE_IPV4, flush_every=TRACE_FLUSH) if tester is not None else None,
        PcapWriter(car, LINKTYPE_IPV4, flush_every=TRACE_FLUSH) if car is not None else None,
    )
