"""The simulated vehicle's HSFZ face: BMW's ENET protocol of F- and G-series gateways
(docs/enet.md). Diagnosis on TCP (6801 in a car), vehicle identification on UDP (6811).

The gateway acknowledges every diagnostic message it routes (control word 0x0002, echoing the
addresses and the first UDS bytes) before the ECU's answer (0x0001, from the ECU to the tester);
a message to an address it does not route gets 0x0043 (incorrect destination address); a frame
that cannot be parsed or is too large gets 0x0042/0x0044 and the socket is closed (the stream is
out of step). The ECU models answer exactly as on DoIP and CAN (``EcuModel.handle``); bus faults
(a reset on TransferData, a reset after N messages) apply here too.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

from firmware_py.errors import FrameError
from firmware_py.sim.doip_server import FUNCTIONAL_ADDRESSES
from firmware_py.sim.ecu import PENDING_INTERVAL, EcuModel, Reply
from firmware_py.sim.faults import BusFaults
from firmware_py.transport import hsfz
from firmware_py.transport.hsfz import ControlWord, Decoder, Frame, HsfzIdentity

log = logging.getLogger(__name__)
HSFZ_FUNCTIONAL = 0xDF  # BMW's functional (broadcast) diagnostic address on ENET


class HsfzEntity:
    """The vehicle's HSFZ gateway."""

    def __init__(
        self,
        *,
        identity: HsfzIdentity,
        ecus: dict[int, EcuModel],
        faults: BusFaults,
        clock: Callable[[], float] = time.monotonic,
        inactivity: float = 300.0,
    ) -> None:
        self.identity = identity
        self.ecus = ecus
        self.faults = faults
        self.clock = clock
        self.inactivity = inactivity
        self.diagnostic_messages = 0
        self.open_sockets: set[_HsfzConnection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None

    async def start(self, host: str, diag_port: int, control_port: int) -> tuple[int, int]:
        """Listen on TCP ``diag_port`` and UDP ``control_port`` (0: free ports). Returns both."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _HsfzConnection(self), host, diag_port, reuse_address=True
        )
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _HsfzUdp(self), local_addr=(host, control_port)
        )
        return (
            int(self._server.sockets[0].getsockname()[1]),
            int(self._udp.get_extra_info("sockname")[1]),
        )

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
            for conn in list(self.open_sockets):
                conn.close()
            await self._server.wait_closed()

    def udp_answer(self, data: bytes) -> bytes | None:
        """The answer to one datagram on the control port, or None (ignored)."""
        # Only the control word matters for a request: Scapy's HSFZ(control=0x11), for one,
        # announces a length of 2 and sends no data, and real gateways answer it.
        if len(data) >= hsfz.HEADER.size:
            _, control = hsfz.HEADER.unpack_from(data)
            if control == ControlWord.VEHICLE_IDENTIFICATION:
                return self.identity.encode()
        return None


class _HsfzUdp(asyncio.DatagramProtocol):
    def __init__(self, entity: HsfzEntity) -> None:
        self.entity = entity
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = self.entity.udp_answer(data)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


class _HsfzConnection(asyncio.Protocol):
    """One tester's TCP socket on the diagnostic port."""

    def __init__(self, entity: HsfzEntity) -> None:
        self.entity = entity
        self.decoder = Decoder()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.entity.open_sockets.add(self)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.entity.open_sockets.discard(self)
        if self.timer is not None:
            self.timer.cancel()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.entity.inactivity, self.close)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def write(self, *frames: Frame) -> None:
        if not self.is_closing():
            assert self.transport is not None
            self.transport.write(b"".join(f.encode() for f in frames))

    def data_received(self, data: bytes) -> None:
        self._arm()
        try:
            frames = self.decoder.feed(data)
        except FrameError as err:
            log.info("HSFZ: %s; closing the socket", err)
            self.write(Frame(ControlWord.MESSAGE_TOO_LARGE))
            self.close()
            return
        for frame in frames:
            try:
                self.dispatch(frame)
            except Exception:  # noqa: BLE001 - one broken socket must not stop the entity
                log.exception("HSFZ connection failed")
                self.close()
                return

    def dispatch(self, frame: Frame) -> None:
        if frame.control == ControlWord.ALIVE_CHECK:
            # a tester's alive check (or its answer to ours) - answered with the gateway address
            self.write(Frame(ControlWord.ALIVE_CHECK, bytes([self.entity.identity.diag_address])))
        elif frame.control == ControlWord.DIAGNOSTIC_MESSAGE:
            if len(frame.data) < 3:
                self.write(Frame(ControlWord.INCORRECT_FORMAT, frame.data[:2]))
                return
            self.diagnostic(frame)
        elif frame.control in (ControlWord.VEHICLE_IDENTIFICATION, ControlWord.TERMINAL15):
            if frame.control == ControlWord.VEHICLE_IDENTIFICATION:
                self.write(
                    Frame(ControlWord.VEHICLE_IDENTIFICATION, self.entity.identity.encode()[6:])
                )
            else:
                self.write(Frame(ControlWord.TERMINAL15, b"\x05"))  # terminal 15 on
        else:
            self.write(Frame(ControlWord.INCORRECT_CONTROL_WORD, frame.data[:2]))

    def diagnostic(self, frame: Frame) -> None:
        e = self.entity
        tester, target, data = frame.source, frame.target, frame.payload
        functional = target == HSFZ_FUNCTIONAL or target in FUNCTIONAL_ADDRESSES
        ecu = e.ecus.get(target)
        if ecu is None and not functional:
            self.write(Frame(ControlWord.INCORRECT_DESTINATION_ADDRESS, frame.data[:2]))
            return
        e.diagnostic_messages += 1
        f = e.faults
        if (f.doip_reset_after and e.diagnostic_messages >= f.doip_reset_after) or (
            f.doip_reset_on_transfer and data[:1] == b"\x36"
        ):
            f.doip_reset_after, f.doip_reset_on_transfer = 0, False  # once
            if self.transport is not None:
                self.transport.abort()  # the gateway resets the connection
            return
        out = [hsfz.acknowledge(frame)]
        for model in list(e.ecus.values()) if functional else [ecu]:
            assert model is not None
            reply = model.handle(data, e.clock(), functional=functional)
            reply = reply.within(hsfz.MAX_DATA - 2, data[0])  # 2 bytes of addresses
            if reply.response is None and not reply.pending:
                continue
            if not reply.pending and not reply.delay:
                assert reply.response is not None
                out.append(
                    hsfz.diagnostic_message(model.spec.address & 0xFF, tester, reply.response)
                )
                continue
            asyncio.create_task(
                self._answer_later(model.spec.address & 0xFF, tester, data[0], reply)
            )
        self.write(*out)

    async def _answer_later(self, source: int, tester: int, sid: int, reply: Reply) -> None:
        try:
            for _ in reply.pending_frames():
                if self.is_closing():
                    return
                self.write(hsfz.diagnostic_message(source, tester, bytes([0x7F, sid, 0x78])))
                await asyncio.sleep(PENDING_INTERVAL)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.response is not None:
                self.write(hsfz.diagnostic_message(source, tester, reply.response))
        except (ConnectionError, RuntimeError):
            pass
