"""The simulated vehicle's DoIP entity (ISO 13400-2:2019) on asyncio, TCP and UDP.

Every header is validated (:func:`firmware_py.transport.doip_frames.check_header`: protocol version
and its inverse, payload type, payload length against the type's rules and our maximum), and a
misbehaving peer gets the generic NACK the standard names
(table 19) and, for a broken pattern or length, a closed socket. Timers are named as in the
standard: T_TCP_Initial_Inactivity (routing activation must come within it),
T_TCP_General_Inactivity (an idle or stalled socket is closed), so a header that announces more
bytes than the peer sends never holds a socket forever, and T_TCP_Alive_Check (how long the
entity waits for alive check responses before it frees a registered socket).

Routing activation follows the socket handler of ISO 13400-2 (2012 9.6.x, 2019 figure
"routing activation"): a source address active on another socket, or a new tester while all
TCP_DATA sockets are registered, makes the entity send alive check requests first and free the
sockets that stay silent; only then does it refuse (0x03, 0x01). A diagnostic message whose source
address is not the one activated on its socket gets NACK 0x02 and the socket is closed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Callable

from firmware_py.sim.ecu import EcuModel
from firmware_py.sim.faults import BusFaults
from firmware_py.sim.gateway_face import FUNCTIONAL_ADDRESSES, GatewayConnection, GatewayEntity
from firmware_py.transport.doip_frames import (
    SUPPORTED_VERSIONS,
    DiagNack,
    GenericNack,
    PayloadType,
    RoutingCode,
    check_header,
    pack,
)

log = logging.getLogger(__name__)
MAX_SOCKETS = 4
# ISO 13400-2 table 47 (2019), seconds
T_TCP_INITIAL_INACTIVITY = 2.0
T_TCP_GENERAL_INACTIVITY = 300.0
T_TCP_ALIVE_CHECK = 0.5
MAX_DATA_SIZE = 0x00100010  # largest diagnostic message we accept (entity status reports it)


class DoipEntity(GatewayEntity):
    """The vehicle's DoIP gateway: identification on UDP, routing and diagnostics on TCP."""

    def __init__(
        self,
        *,
        vin: str,
        logical_address: int,
        eid: bytes,
        gid: bytes,
        ecus: dict[int, EcuModel],
        faults: BusFaults,
        clock: Callable[[], float] = time.monotonic,
        initial_inactivity: float = T_TCP_INITIAL_INACTIVITY,
        general_inactivity: float = T_TCP_GENERAL_INACTIVITY,
        tcp_alive_check: float = T_TCP_ALIVE_CHECK,
        max_sockets: int = MAX_SOCKETS,
    ) -> None:
        super().__init__(ecus=ecus, faults=faults, clock=clock)
        self.vin = vin
        self.logical_address = logical_address
        self.eid, self.gid = eid, gid
        self.initial_inactivity = initial_inactivity
        self.general_inactivity = general_inactivity
        self.tcp_alive_check = tcp_alive_check
        self.max_sockets = max_sockets
        self.connections: dict[int, _Connection] = {}  # tester address -> its socket

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, host: str, port: int) -> int:
        """Bind TCP and UDP on the same port (0: a free one). Returns the port."""
        loop = asyncio.get_running_loop()
        for _ in range(20):
            self._server = await loop.create_server(
                lambda: _Connection(self), host, port, reuse_address=True
            )
            bound = self._server.sockets[0].getsockname()[1]
            try:
                return await self._listen_udp(host, bound)
            except OSError:
                self._server.close()
                await self._server.wait_closed()
                if port:
                    raise
        raise OSError("no free port for TCP and UDP together")

    def announcement(self, version: int = 0x02) -> bytes:
        """Vehicle announcement / identification response (ISO 13400-2 table 22)."""
        payload = (
            self.vin.encode()
            + struct.pack(">H", self.logical_address)
            + self.eid
            + self.gid
            + b"\x00\x00"
        )
        return pack(PayloadType.VEHICLE_ANNOUNCEMENT, payload, version)

    def announce(self, target: tuple[str, int], count: int = 3) -> None:
        if self._udp is None:
            return
        sock = self._udp.get_extra_info("socket")
        if target[0].endswith(".255"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for _ in range(count):  # A_DoIP_Announce_Num
            try:
                self._udp.sendto(self.announcement(), target)
            except OSError as err:
                log.warning("vehicle announcement to %s failed: %s", target, err)

    # -- UDP --------------------------------------------------------------------------------
    def udp_answer(self, data: bytes) -> bytes | None:
        """The answer to one UDP datagram, or None. Pure apart from reading our state."""
        if len(data) < 8:
            return pack(PayloadType.GENERIC_NACK, bytes([GenericNack.INCORRECT_PATTERN]))
        head = check_header(data[:8], max_length=MAX_DATA_SIZE)
        version = head.version if head.version in SUPPORTED_VERSIONS else 0x02
        if head.nack is not None:
            return pack(PayloadType.GENERIC_NACK, bytes([head.nack]), version)
        payload = data[8:]
        if len(payload) != head.length:
            return pack(
                PayloadType.GENERIC_NACK, bytes([GenericNack.INVALID_PAYLOAD_LENGTH]), version
            )
        pt = head.payload_type
        if pt == PayloadType.VEHICLE_IDENTIFICATION_REQUEST:
            return self.announcement(version)
        if pt == PayloadType.VEHICLE_IDENTIFICATION_REQUEST_EID:
            return self.announcement(version) if payload == self.eid else None
        if pt == PayloadType.VEHICLE_IDENTIFICATION_REQUEST_VIN:
            return self.announcement(version) if payload == self.vin.encode() else None
        if pt == PayloadType.ENTITY_STATUS_REQUEST:
            return self._entity_status(version)
        if pt == PayloadType.POWER_MODE_REQUEST:
            return pack(PayloadType.POWER_MODE_RESPONSE, b"\x01", version)
        return pack(PayloadType.GENERIC_NACK, bytes([GenericNack.UNKNOWN_PAYLOAD_TYPE]), version)

    def _entity_status(self, version: int) -> bytes:
        payload = bytes([0x00, self.max_sockets, len(self.open_sockets)]) + struct.pack(
            ">I", MAX_DATA_SIZE
        )
        return pack(PayloadType.ENTITY_STATUS_RESPONSE, payload, version)


class _Connection(GatewayConnection):
    """One tester's TCP socket. A protocol (not streams): parsing is a loop over a buffer, which
    keeps the per-message cost of a 4 KiB TransferData low. Inactivity timers per ISO 13400-2
    table 47: T_TCP_Initial_Inactivity until routing activation, then T_TCP_General_Inactivity."""

    entity: DoipEntity

    def __init__(self, entity: DoipEntity) -> None:
        super().__init__(entity)
        self.buf = bytearray()
        self.discard = 0  # payload bytes of a refused message still to skip
        self.tester: int | None = None
        self.version = 0x02
        self.alive = asyncio.Event()
        self.busy = False  # a routing activation waits for another socket's alive check

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        e = self.entity
        if self.tester is not None and e.connections.get(self.tester) is self:
            del e.connections[self.tester]

    def data_received(self, data: bytes) -> None:
        self._arm()
        if self.discard:
            dropped = min(self.discard, len(data))
            self.discard -= dropped
            data = data[dropped:]
        self.buf += data
        try:
            self._process()
        except Exception:  # noqa: BLE001 - one broken socket must not stop the entity
            log.exception("DoIP connection failed")
            self.close()

    # -- helpers --------------------------------------------------------------------------
    def inactivity(self) -> float:
        e = self.entity
        return e.initial_inactivity if self.tester is None else e.general_inactivity

    def answer_bytes(self, ecu: EcuModel, tester: int, response: bytes) -> bytes:
        payload = struct.pack(">HH", ecu.spec.address, tester) + response
        return pack(PayloadType.DIAGNOSTIC_MESSAGE, payload, self.version)

    def send(self, payload_type: int, payload: bytes) -> None:
        self.write_bytes(pack(payload_type, payload, self.version))

    def nack(self, code: GenericNack) -> None:
        self.send(PayloadType.GENERIC_NACK, bytes([code]))

    def _process(self) -> None:
        buf = self.buf
        while not self.busy and len(buf) >= 8 and not self.is_closing():
            head = check_header(bytes(buf[:8]), max_length=MAX_DATA_SIZE)
            if head.version in SUPPORTED_VERSIONS:
                self.version = head.version
            if head.nack is not None:
                self.nack(head.nack)
                if head.close or head.length > 16 * MAX_DATA_SIZE:
                    self.close()
                    return
                skip = min(head.length, len(buf) - 8)
                del buf[: 8 + skip]
                self.discard = head.length - skip
                continue
            if len(buf) < 8 + head.length:
                return
            payload = bytes(buf[8 : 8 + head.length])
            del buf[: 8 + head.length]
            if not self.dispatch(head.payload_type, payload):
                self.close()
                return

    def dispatch(self, pt: int, payload: bytes) -> bool:
        """Handle one message; False closes the socket."""
        e = self.entity
        if pt == PayloadType.ROUTING_ACTIVATION_REQUEST:
            return self.routing_activation(payload)
        if pt == PayloadType.ALIVE_CHECK_RESPONSE:
            self.alive.set()
            return True
        if pt == PayloadType.ALIVE_CHECK_REQUEST:
            self.send(PayloadType.ALIVE_CHECK_RESPONSE, struct.pack(">H", e.logical_address))
            return True
        if pt == PayloadType.ENTITY_STATUS_REQUEST:
            self.write_bytes(e._entity_status(self.version))
            return True
        if pt == PayloadType.POWER_MODE_REQUEST:
            self.send(PayloadType.POWER_MODE_RESPONSE, b"\x01")
            return True
        if pt == PayloadType.DIAGNOSTIC_MESSAGE:
            return self.diagnostic(payload)
        # identification requests belong on UDP
        self.nack(GenericNack.UNKNOWN_PAYLOAD_TYPE)
        return True

    def routing_activation(self, payload: bytes) -> bool:
        e = self.entity
        source, activation_type = struct.unpack(">HB", payload[:3])

        def respond(code: RoutingCode) -> None:
            self.send(
                PayloadType.ROUTING_ACTIVATION_RESPONSE,
                struct.pack(">HHB", source, e.logical_address, code) + b"\x00" * 4,
            )

        if not (0x0E00 <= source <= 0x0FFF or source == 0x00F4):
            respond(RoutingCode.UNKNOWN_SOURCE_ADDRESS)
            return False
        if activation_type not in (0x00, 0x01, 0xE0):
            respond(RoutingCode.UNSUPPORTED_ACTIVATION_TYPE)
            return False
        if self.tester is not None and self.tester != source:
            respond(RoutingCode.DIFFERENT_SOURCE_ADDRESS)
            return False
        other = e.connections.get(source)
        if other is self:
            respond(RoutingCode.SUCCESS)  # activated again on the same socket
            return True
        if other is None and len(e.connections) < e.max_sockets:
            self._register(source)
            respond(RoutingCode.SUCCESS)
            return True
        # The source address is active on another socket, or all sockets are registered: check
        # with alive check requests which of those sockets still have a tester behind them.
        self.busy = True
        checked = [other] if other is not None else list(e.connections.values())
        asyncio.get_running_loop().create_task(
            self._activate_after_alive_check(checked, source, respond)
        )
        return True

    def _register(self, source: int) -> None:
        self.tester = source
        self.entity.connections[source] = self
        self._arm()

    def free(self) -> None:
        """Drop this socket's registration at once and close it (it failed an alive check)."""
        e = self.entity
        if self.tester is not None and e.connections.get(self.tester) is self:
            del e.connections[self.tester]
        self.close()

    async def _activate_after_alive_check(
        self, checked: list[_Connection], source: int, respond: Callable[[RoutingCode], None]
    ) -> None:
        e = self.entity
        for conn in checked:
            conn.alive.clear()
            conn.send(PayloadType.ALIVE_CHECK_REQUEST, b"")
        waits = [asyncio.ensure_future(conn.alive.wait()) for conn in checked]
        await asyncio.wait(waits, timeout=e.tcp_alive_check)  # T_TCP_Alive_Check
        for conn, waited in zip(checked, waits, strict=True):
            waited.cancel()
            if not conn.alive.is_set():
                conn.free()  # no tester behind it any more
        if self.is_closing():
            return
        other = e.connections.get(source)
        if other is not None and other is not self:
            respond(RoutingCode.SOURCE_ADDRESS_ACTIVE_ELSEWHERE)
            self.close()
            return
        if other is None and len(e.connections) >= e.max_sockets:
            respond(RoutingCode.ALL_SOCKETS_REGISTERED)
            self.close()
            return
        self._register(source)
        respond(RoutingCode.SUCCESS)
        self.busy = False
        self._process()

    def diagnostic(self, payload: bytes) -> bool:
        e = self.entity
        source, target = struct.unpack(">HH", payload[:4])
        data = payload[4:]

        def diag_nack(code: DiagNack) -> None:
            self.send(PayloadType.DIAGNOSTIC_NACK, struct.pack(">HHB", target, source, code))

        if self.tester is None or source != self.tester:
            # not activated, or not the source address activated on this socket
            diag_nack(DiagNack.INVALID_SOURCE_ADDRESS)
            return False  # close the socket
        functional = target in FUNCTIONAL_ADDRESSES
        ecu = e.ecus.get(target)
        if ecu is None and not functional:
            diag_nack(DiagNack.UNKNOWN_TARGET_ADDRESS)
            return True
        targets = [ecu] if ecu is not None and not functional else list(e.ecus.values())
        answers = self.route(source, targets, data, functional=functional)
        if answers is not None:  # the acknowledgement and immediate answers: one TCP segment
            ack = pack(
                PayloadType.DIAGNOSTIC_ACK, struct.pack(">HHB", target, source, 0x00), self.version
            )
            self.write_bytes(ack + b"".join(answers))
        return True
