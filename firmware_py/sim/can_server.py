"""The simulated vehicle's CAN face: every ECU on one python-can bus, ISO-TP (ISO 15765-2) with
can-isotp, in BMW-style extended addressing (tester 0xF1 on 0x6F1, first data byte = ECU address;
answers on 0x600 + address with first byte 0xF1) and, where the vehicle file gives an identifier
pair, normal 11-bit addressing. Functionally addressed requests (0x6F1 with first byte 0xDF, and
0x7DF in normal addressing) reach every ECU, which answers on its own identifier and applies the
functional-addressing rules of ISO 14229-1 (no NRC 0x11, 0x12, 0x31, 0x7E, 0x7F).

One thread per ISO-TP stack waits for requests, asks the ECU's model for the reply and sends it,
with the "response pending" frames first; the waiting is here, not in the UDS logic.
"""

from __future__ import annotations

import concurrent.futures
import logging
import random
import threading
import time
from collections.abc import Callable

import can
import isotp

from firmware_py.sim.ecu import PENDING_INTERVAL, EcuModel
from firmware_py.sim.faults import BusFaults

log = logging.getLogger(__name__)
TESTER = 0xF1
BMW_REQUEST_ID = 0x6F1
BMW_RESPONSE_BASE = 0x600
BMW_FUNCTIONAL = 0xDF  # first byte of a functional request on 0x6F1
OBD_FUNCTIONAL_ID = 0x7DF  # functional request identifier in normal addressing (ISO 15765-4)
MAX_MESSAGE = 4095  # ISO 15765-2 on classic CAN: longer answers are NRC 0x14 (responseTooLong)


class _EcuStack(isotp.NotifierBasedCanStack):
    """can-isotp's stack, fed by :class:`CanFace`'s one router instead of a notifier listener of
    its own: with a listener per stack every frame woke all sixteen stacks' threads, which made
    the simulated bus ten times slower than the ECUs' logic."""

    def start(self) -> None:
        self.buffered_reader = can.BufferedReader()
        isotp.TransportLayer.start(self)

    def stop(self) -> None:
        self.buffered_reader = None
        isotp.TransportLayer.stop(self)

    def deliver(self, msg: can.Message) -> None:
        reader = self.buffered_reader
        if reader is not None:
            reader.on_message_received(msg)


class CanFace:
    def __init__(
        self,
        bus: can.BusABC,
        ecus: dict[int, EcuModel],
        faults: BusFaults,
        *,
        st_min: float = 0.0,
        block_size: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.ecus = ecus
        self.faults = faults
        self.clock = clock
        self.notifier = can.Notifier(bus, [self._route], timeout=0.1)
        self._routes: dict[tuple[int, int | None], list[_EcuStack]] = {}
        self._answer_on: dict[int, _EcuStack] = {}
        """functional channel (by id) -> the physical channel its answers go out on"""
        self._frames_seen: dict[int, int] = {}
        self._random = random.Random(faults.drop_can_seed)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.stacks: list[tuple[EcuModel, isotp.TransportLayer, bool]] = []
        params = {
            "stmin": int(st_min * 1000) if st_min >= 0.001 else 0,
            # The ECU asks for a flow control every 16 frames (many ECUs use 8-32): it paces a
            # sender on the in-software bus, which has no bit timing to do it.
            "blocksize": block_size,
            "tx_padding": 0xCC,
            "tx_data_min_length": 8,
            "rx_consecutive_frame_timeout": 1000,
            "rx_flowcontrol_timeout": 1000,
            "max_frame_size": 4095,
        }
        for model in ecus.values():
            spec = model.spec
            addresses = [  # (address, functional)
                (
                    isotp.Address(
                        isotp.AddressingMode.Extended_11bits,
                        txid=BMW_RESPONSE_BASE + spec.address,
                        rxid=BMW_REQUEST_ID,
                        target_address=TESTER,
                        source_address=rx_byte,
                    ),
                    rx_byte == BMW_FUNCTIONAL,
                )
                for rx_byte in (spec.address, BMW_FUNCTIONAL)
            ]
            if spec.can_ids:
                addresses += [
                    (
                        isotp.Address(
                            isotp.AddressingMode.Normal_11bits, rxid=rxid, txid=spec.can_ids[1]
                        ),
                        rxid == OBD_FUNCTIONAL_ID,
                    )
                    for rxid in (spec.can_ids[0], OBD_FUNCTIONAL_ID)
                ]
            physical: _EcuStack | None = None
            for address, functional in addresses:
                stack = _EcuStack(bus, self.notifier, address=address, params=dict(params))
                self.stacks.append((model, stack, functional))
                key = (address.get_rx_arbitration_id(), address.get_rx_extension_byte())
                self._routes.setdefault(key, []).append(stack)
                if functional and physical is not None:
                    # An ECU answers a functional request as it answers a physical one: on its
                    # response identifier, with the tester's flow control on its physical
                    # request identifier (ISO 15765-4), which the functional channel never sees.
                    self._answer_on[id(stack)] = physical
                physical = None if functional else stack

    def _route(self, msg: can.Message) -> None:
        """Deliver a frame to the stacks it is addressed to (id, and first byte for BMW addressing)."""
        if msg.is_error_frame or msg.is_remote_frame or self._should_drop(msg):
            return
        for stack in self._routes.get((msg.arbitration_id, None), ()):
            stack.deliver(msg)
        if msg.data:
            for stack in self._routes.get((msg.arbitration_id, msg.data[0]), ()):
                stack.deliver(msg)

    def _should_drop(self, msg: can.Message) -> bool:
        f = self.faults
        if f.drop_can_frame.get(msg.arbitration_id):
            n = self._frames_seen.get(msg.arbitration_id, 0) + 1
            self._frames_seen[msg.arbitration_id] = n
            if n == f.drop_can_frame[msg.arbitration_id]:
                del f.drop_can_frame[msg.arbitration_id]
                self._frames_seen.pop(msg.arbitration_id, None)
                log.info("fault: dropped CAN frame %03X", msg.arbitration_id)
                return True
        return bool(f.drop_can_rate) and self._random.random() < f.drop_can_rate

    def start(self) -> None:
        for model, stack, functional in self.stacks:
            stack.start()
            thread = threading.Thread(
                target=self._serve,
                args=(model, stack, functional),
                daemon=True,
                name=f"sim-can-{model.spec.name}",
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for _, stack, _ in self.stacks:
            # wakes the stack's thread from its wait for a request (an empty one is skipped):
            # can-isotp's recv() waits on this queue and has no way to be interrupted
            stack.rx_queue.put(bytearray())
        for thread in self._threads:
            thread.join(timeout=2)
        # A stack's stop joins its two threads, each waking from a wait of its own: ~20 ms per
        # stack, which one after another made stopping ``vci sim`` take most of a second (32
        # stacks). All at once (and the notifier's thread) it takes one stack's time.
        stops = [stack.stop for _, stack, _ in self.stacks] + [self.notifier.stop]
        with concurrent.futures.ThreadPoolExecutor(len(stops)) as pool:
            for done in [pool.submit(stop) for stop in stops]:
                done.result()

    def _serve(self, model: EcuModel, stack: isotp.TransportLayer, functional: bool) -> None:
        while not self._stop.is_set():
            try:
                request = stack.recv(block=True, timeout=0.2)
            except Exception:  # noqa: BLE001 - a broken frame sequence must not end the ECU
                log.exception("ISO-TP receive failed for %s", model.spec.name)
                continue
            if not request:
                continue
            reply = model.handle(bytes(request), self.clock(), functional=functional).within(
                MAX_MESSAGE, request[0]
            )
            out = self._answer_on.get(id(stack), stack)
            try:
                for _ in reply.pending_frames():  # for ever: until the simulator stops
                    out.send(bytes([0x7F, request[0], 0x78]))
                    if self._stop.wait(PENDING_INTERVAL):
                        return
                if reply.delay and self._stop.wait(reply.delay):
                    return
                if reply.response is not None:
                    out.send(reply.response)
            except Exception:  # noqa: BLE001
                log.exception("ISO-TP send failed for %s", model.spec.name)
