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
import time
from collections.abc import Callable

from firmware_py.errors import FrameError
from firmware_py.sim.ecu import EcuModel
from firmware_py.sim.faults import BusFaults
from firmware_py.sim.gateway_face import FUNCTIONAL_ADDRESSES, GatewayConnection, GatewayEntity
from firmware_py.transport import hsfz
from firmware_py.transport.hsfz import ControlWord, Decoder, Frame, HsfzIdentity

log = logging.getLogger(__name__)
HSFZ_FUNCTIONAL = 0xDF  # BMW's functional (broadcast) diagnostic address on ENET


class HsfzEntity(GatewayEntity):
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
        super().__init__(ecus=ecus, faults=faults, clock=clock)
        self.identity = identity
        self.inactivity = inactivity

    async def start(self, host: str, diag_port: int, control_port: int) -> tuple[int, int]:
        """Listen on TCP ``diag_port`` and UDP ``control_port`` (0: free ports). Returns both."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _HsfzConnection(self), host, diag_port, reuse_address=True
        )
        udp_port = await self._listen_udp(host, control_port)
        return int(self._server.sockets[0].getsockname()[1]), udp_port

    def udp_answer(self, data: bytes) -> bytes | None:
        """The answer to one datagram on the control port, or None (ignored)."""
        # Only the control word matters for a request: Scapy's HSFZ(control=0x11), for one,
        # announces a length of 2 and sends no data, and real gateways answer it.
        if len(data) >= hsfz.HEADER.size:
            _, control = hsfz.HEADER.unpack_from(data)
            if control == ControlWord.VEHICLE_IDENTIFICATION:
                return self.identity.encode()
        return None


class _HsfzConnection(GatewayConnection):
    """One tester's TCP socket on the diagnostic port."""

    entity: HsfzEntity
    max_response = hsfz.MAX_DATA - 2  # 2 bytes of addresses

    def __init__(self, entity: HsfzEntity) -> None:
        super().__init__(entity)
        self.decoder = Decoder()

    def inactivity(self) -> float:
        return self.entity.inactivity

    def answer_bytes(self, ecu: EcuModel, tester: int, response: bytes) -> bytes:
        return hsfz.diagnostic_message(ecu.spec.address & 0xFF, tester, response).encode()

    def write(self, *frames: Frame) -> None:
        self.write_bytes(b"".join(f.encode() for f in frames))

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
        elif frame.control == ControlWord.VEHICLE_IDENTIFICATION:
            self.write(self.entity.identity.frame())
        elif frame.control == ControlWord.TERMINAL15:
            self.write(Frame(ControlWord.TERMINAL15, b"\x05"))  # terminal 15 on
        else:
            self.write(Frame(ControlWord.INCORRECT_CONTROL_WORD, frame.data[:2]))

    def diagnostic(self, frame: Frame) -> None:
        e = self.entity
        target = frame.target
        functional = target == HSFZ_FUNCTIONAL or target in FUNCTIONAL_ADDRESSES
        ecu = e.ecus.get(target)
        if ecu is None and not functional:
            self.write(Frame(ControlWord.INCORRECT_DESTINATION_ADDRESS, frame.data[:2]))
            return
        targets = [ecu] if ecu is not None and not functional else list(e.ecus.values())
        answers = self.route(frame.source, targets, frame.payload, functional=functional)
        if answers is not None:
            self.write_bytes(hsfz.acknowledge(frame).encode() + b"".join(answers))
