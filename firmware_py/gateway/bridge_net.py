"""The ENET bridge's sockets on the gateway's event loop: what the workshop's tester sees on the
box's Wi-Fi side (HSFZ on TCP 6801, TCP and UDP 6811; DoIP on TCP and UDP 13400), and how each of
its diagnostic messages reaches the car (docs/enet.md, "The box as an ENET bridge").

Only the admitted client address gets anything: a datagram from another address is ignored, a
TCP connection from another address is reset at once. Two ways to the car:

- **relay** (the box has the car's ENET): every tester connection gets its own connection to the
  car, HSFZ to HSFZ, DoIP to DoIP; each frame is parsed, checked by the :class:`.Guard` and
  forwarded unchanged, or refused with the ECU-shaped answer ``7F <sid> 22``;
- **translate** (the box has only D-CAN): the bridge is the tester's gateway; it acknowledges
  each message itself and hands the UDS bytes to a :class:`Translation` (ISO-TP with BMW extended
  addressing on the vehicle worker), whose answers go back to the tester.

Both sides are traced as pcap (tester side: one file per session, every connection in it).
This module owns the session (:class:`Hub`) and identification on UDP; the TCP faces are in
:mod:`.bridge_faces`.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from doipclient.messages import VehicleIdentificationResponse

from firmware_py.config import BridgeConfig
from firmware_py.errors import FrameError
from firmware_py.gateway.bridge_faces import DoipTester, HsfzControl, HsfzTester, TesterConnection
from firmware_py.gateway.bridge_guard import Guard, Refusal, classified, required_scope
from firmware_py.gateway.tariffs import Scope
from firmware_py.transport import doip_frames, hsfz
from firmware_py.transport.hsfz import ControlWord, HsfzIdentity
from firmware_py.transport.trace import LINKTYPE_IPV4, PcapWriter
from firmware_py.uds.raw_requests import RawClass

log = logging.getLogger(__name__)
GATEWAY_DOIP_ADDRESS = 0x0010
TRACE_FLUSH = 0.25
"""seconds between flushes of a session's traces (and at its end): a relay writes in batches"""


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
class EnetCar:
    """relay: where the car's ENET answered identification, (host, port) per protocol."""

    hsfz: tuple[str, int]
    doip: tuple[str, int]


class Translation(Protocol):
    """translate: how a diagnostic message reaches an ECU over the box's own link (D-CAN)."""

    max_message: int
    """the longest UDS message the car's bus carries (longer: message too large)"""

    def request(
        self,
        target: int,
        payload: bytes,
        answer: Callable[[bytes], None],
        done: Callable[[], None],
    ) -> None:
        """Send ``payload`` to the ECU at ``target``; ``answer`` is called on the loop with each
        answer (a response pending first, then the response), ``done`` once when the exchange
        is over (answered, timed out or failed)."""
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
    listen: BridgeConfig
    """where the bridge listens (``listen_host`` and the ports; a 0 port takes a free one)"""
    car: EnetCar | Translation
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
    _connections: set[TesterConnection] = field(default_factory=set)

    @property
    def relay(self) -> bool:
        return isinstance(self.car, EnetCar)

    @property
    def translation(self) -> Translation:
        assert not isinstance(self.car, EnetCar), "a relay has no requests of its own"
        return self.car

    def car_address(self, protocol: str) -> tuple[str, int]:
        """relay: the car's (host, port) for ``hsfz`` or ``doip``."""
        assert isinstance(self.car, EnetCar), "a translation has no ENET address"
        return self.car.hsfz if protocol == "hsfz" else self.car.doip

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> dict[str, int]:
        """Listen on the Wi-Fi side; returns the bound ports (a configured 0 takes a free one)."""
        if self.identity.hsfz is not None:
            self.bound["hsfz"] = await self._tcp(self.listen.hsfz_port, lambda: HsfzTester(self))
            self.bound["hsfz_control"] = await self._tcp_udp(
                self.listen.hsfz_control_port, lambda: HsfzControl(self), self._hsfz_identification
            )
        if self.identity.doip:
            self.bound["doip"] = await self._tcp_udp(
                self.listen.doip_port, lambda: DoipTester(self), self._doip_udp
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
            factory, self.listen.listen_host, port, reuse_address=True
        )
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _tcp_udp(
        self,
        port: int,
        tcp: Callable[[], asyncio.Protocol],
        answer: Callable[[bytes], bytes | None],
    ) -> int:
        """TCP and UDP on the same port number (both protocols use one port in the standards).
        UDP also on the Wi-Fi network's broadcast address: testers look for a car by
        identification sent there, which a socket bound to the box's address never receives."""
        loop = asyncio.get_running_loop()
        host = self.listen.listen_host
        for _ in range(20):
            server = await loop.create_server(tcp, host, port, reuse_address=True)
            bound = int(server.sockets[0].getsockname()[1])
            try:
                unicast, _ = await loop.create_datagram_endpoint(
                    lambda: _Udp(self, answer), local_addr=(host, bound)
                )
            except OSError:
                server.close()
                await server.wait_closed()
                if port:
                    raise
                continue
            self._servers += [server, unicast]
            broadcast = broadcast_address(host)
            if broadcast is not None:
                try:  # answered from the box's own address, where the tester then connects
                    heard, _ = await loop.create_datagram_endpoint(
                        functools.partial(_Udp, self, answer, reply_from=unicast),
                        local_addr=(broadcast, bound),
                    )
                    self._servers.append(heard)
                except OSError as err:
                    log.warning(
                        "bridge: identification broadcast to %s:%d not heard (%s): the tester "
                        "must be given the box's address",
                        broadcast,
                        bound,
                        err,
                    )
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
        # The control word says what is asked. EdiabasLib sends the request with a length of 0;
        # Scapy's HSFZ layer with a length of 2 and no data: both are answered.
        if len(data) < hsfz.HEADER.size or len(data) > 64:
            return None
        _, control = hsfz.HEADER.unpack_from(data)
        if control == ControlWord.VEHICLE_IDENTIFICATION and self.identity.hsfz:
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
    """Identification on UDP; ``reply_from``: the socket that answers (a socket bound to a
    broadcast address answers through the one bound to the box's own address)."""

    def __init__(
        self,
        hub: Hub,
        answer: Callable[[bytes], bytes | None],
        reply_from: asyncio.DatagramTransport | None = None,
    ) -> None:
        self.hub, self.answer = hub, answer
        self.transport = reply_from

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (CPython's selector datagram transport is no asyncio.DatagramTransport subclass)
        if self.transport is None:
            self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.hub.admitted(addr):
            return  # a client that was not admitted gets nothing
        reply = self.answer(data)
        if reply is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


def broadcast_address(host: str) -> str | None:
    """The broadcast address of the network of the interface that has the address ``host``
    (Linux: SIOCGIFADDR, SIOCGIFNETMASK); None for an address no interface has (0.0.0.0: every
    socket hears broadcasts anyway) or a network without one (/32)."""
    import fcntl
    import ipaddress
    import socket
    import struct

    siocgifaddr, siocgifnetmask = 0x8915, 0x891B
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            ifreq = struct.pack("256s", name.encode()[:15])
            try:
                if socket.inet_ntoa(fcntl.ioctl(sock, siocgifaddr, ifreq)[20:24]) != host:
                    continue
                mask = socket.inet_ntoa(fcntl.ioctl(sock, siocgifnetmask, ifreq)[20:24])
            except OSError:  # an interface without an IPv4 address
                continue
            broadcast = str(ipaddress.IPv4Network(f"{host}/{mask}", strict=False).broadcast_address)
            return broadcast if broadcast != host else None
    return None


def session_pcaps(tester: Any, car: Any) -> tuple[PcapWriter | None, PcapWriter | None]:
    """The tester side's and the car side's pcap writers of one session (paths or None)."""
    return (
        PcapWriter(tester, LINKTYPE_IPV4, flush_every=TRACE_FLUSH) if tester is not None else None,
        PcapWriter(car, LINKTYPE_IPV4, flush_every=TRACE_FLUSH) if car is not None else None,
    )
