"""What the simulated vehicle's two ENET faces (DoIP in :mod:`.doip_server`, BMW HSFZ in
:mod:`.hsfz_server`) share: the gateway entity's listening sockets and their shutdown, one
tester's TCP socket (TCP_NODELAY, inactivity timer, close), and routing a diagnostic request to
the ECU models - functional fan-out, "response pending" and delayed answers, the bus faults that
reset the connection. Each face adds only its framing and its protocol's own messages.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

from firmware_py.sim.ecu import PENDING_INTERVAL, EcuModel, Reply
from firmware_py.sim.faults import BusFaults

log = logging.getLogger(__name__)
FUNCTIONAL_ADDRESSES = (0xE400, 0x00DF)
"""functional (broadcast) diagnostic addresses: ISO 13400-2's first, and BMW's"""


class GatewayEntity:
    """A vehicle gateway face: its ECUs, the bus faults, its open TCP sockets and listeners."""

    def __init__(
        self,
        *,
        ecus: dict[int, EcuModel],
        faults: BusFaults,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ecus = ecus
        self.faults = faults
        self.clock = clock
        self.diagnostic_messages = 0
        self.open_sockets: set[GatewayConnection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None

    def udp_answer(self, data: bytes) -> bytes | None:
        """The answer to one datagram, or None (ignored)."""
        raise NotImplementedError

    async def _listen_udp(self, host: str, port: int) -> int:
        self._udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _UdpFace(self), local_addr=(host, port)
        )
        return int(self._udp.get_extra_info("sockname")[1])

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
            for conn in list(self.open_sockets):
                conn.close()
            await self._server.wait_closed()


class _UdpFace(asyncio.DatagramProtocol):
    def __init__(self, entity: GatewayEntity) -> None:
        self.entity = entity
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = self.entity.udp_answer(data)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


class GatewayConnection(asyncio.Protocol):
    """One tester's TCP socket on a gateway face. Subclasses give :meth:`inactivity` and
    :meth:`answer_bytes`, and call :meth:`route` for each diagnostic request."""

    max_response: int | None = None
    """the most UDS bytes the face carries in one message (None: no limit); a longer answer
    becomes NRC 0x14 (:meth:`Reply.within`)"""

    def __init__(self, entity: GatewayEntity) -> None:
        self.entity = entity
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def inactivity(self) -> float:
        """Seconds of silence after which the socket is closed."""
        raise NotImplementedError

    def answer_bytes(self, ecu: EcuModel, tester: int, response: bytes) -> bytes:
        """An ECU's answer to ``tester`` as this face's message on the wire."""
        raise NotImplementedError

    # -- asyncio.Protocol ------------------------------------------------------------------
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
        self.timer = asyncio.get_running_loop().call_later(self.inactivity(), self.close)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def is_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def write_bytes(self, data: bytes) -> None:
        if not self.is_closing():
            assert self.transport is not None
            self.transport.write(data)

    # -- diagnostic requests ------------------------------------------------------------------
    def route(
        self, tester: int, ecus: list[EcuModel], data: bytes, *, functional: bool
    ) -> list[bytes] | None:
        """Hand one diagnostic request from ``tester`` to ``ecus``. Returns the immediate answers
        as wire bytes (the face writes them after its acknowledgement, in one write); answers
        that come later (response pending, delay) are sent by a task. None: a bus fault reset
        the connection instead (a reset after N messages, or on TransferData; each once)."""
        e = self.entity
        e.diagnostic_messages += 1
        f = e.faults
        if (f.doip_reset_after and e.diagnostic_messages >= f.doip_reset_after) or (
            f.doip_reset_on_transfer and data[:1] == b"\x36"
        ):
            f.doip_reset_after, f.doip_reset_on_transfer = 0, False  # once
            if self.transport is not None:
                self.transport.abort()  # the gateway resets the connection (TCP RST)
            return None
        out = []
        for model in ecus:
            reply = model.handle(data, e.clock(), functional=functional)
            if self.max_response is not None:
                reply = reply.within(self.max_response, data[0])
            if reply.response is None and not reply.pending:
                continue
            if not reply.pending and not reply.delay:
                assert reply.response is not None
                out.append(self.answer_bytes(model, tester, reply.response))
                continue
            asyncio.create_task(self._answer_later(model, tester, data[0], reply))
        return out

    async def _answer_later(self, ecu: EcuModel, tester: int, sid: int, reply: Reply) -> None:
        try:
            for _ in reply.pending_frames():
                if self.is_closing():
                    return
                self.write_bytes(self.answer_bytes(ecu, tester, bytes([0x7F, sid, 0x78])))
                await asyncio.sleep(PENDING_INTERVAL)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.response is not None:
                self.write_bytes(self.answer_bytes(ecu, tester, reply.response))
        except (ConnectionError, RuntimeError):
            pass
