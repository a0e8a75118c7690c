"""ISO-TP (ISO 15765-2) channels to the ECUs on a CAN bus, with can-isotp.

Two addressing schemes: BMW-style extended addressing (tester 0xF1 sends on 0x6F1 with the
target ECU's address as first data byte, the ECU answers on 0x600 + its address with 0xF1 first)
and normal 11-bit addressing with request/response identifier pairs (OBD style, 0x7E0/0x7E8).
All channels share one bus and one ``can.Notifier``.

Two ISO-TP implementations carry the messages (``[transport] isotp_stack``): the Linux kernel's
(``CAN_ISOTP`` sockets of module can-isotp, wrapped by can-isotp's ``isotp.socket``), which
keeps flow control and STmin timing in the kernel on a busy box, and can-isotp's user-space
stack, which works on every python-can bus (serial adapters, the loopback bus of the tests).
``auto`` takes the kernel's on a socketcan interface whose kernel offers it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path

import can
import isotp
from udsoncan.connections import BaseConnection, IsoTPSocketConnection, PythonIsoTpConnection

from firmware_py.errors import TransportError, UnknownTargetError
from firmware_py.i18n import N_
from firmware_py.transport.functional import (
    CAN_FUNCTIONAL_ID,
    CAN_RESPONSE_IDS,
    OBD_WINDOW,
    Collector,
    collect,
)
from firmware_py.transport.trace import CanTrace

BMW_TESTER = 0xF1
BMW_REQUEST_ID = 0x6F1
BMW_RESPONSE_BASE = 0x600
MAX_PAYLOAD = 4095  # ISO 15765-2 classic CAN: the largest message (first frame length is 12 bits)
ISOTP_STACKS = ("auto", "kernel", "user")

log = logging.getLogger(__name__)


def kernel_isotp_available() -> bool:
    """Whether this kernel opens CAN_ISOTP sockets (module can-isotp, Linux 5.10 and newer, loaded
    or loadable on demand)."""
    proto = getattr(socket, "CAN_ISOTP", None)
    if proto is None:
        return False
    try:
        socket.socket(socket.AF_CAN, socket.SOCK_DGRAM, proto).close()
    except OSError:
        return False
    return True


def choose_isotp_stack(wanted: str, bus: can.BusABC) -> str:
    """``kernel`` or ``user`` for ``wanted`` (``auto``, ``kernel`` or ``user``) on ``bus``."""
    if wanted not in ISOTP_STACKS:
        raise ValueError(f"isotp_stack must be auto, kernel or user, not {wanted!r}")
    socketcan = getattr(bus, "channel", None) is not None and type(bus).__name__ == "SocketcanBus"
    if wanted == "user":
        return "user"
    if socketcan and kernel_isotp_available():
        return "kernel"
    if wanted == "kernel":
        raise TransportError(
            N_("the kernel's ISO-TP is not available on this CAN link")
            if socketcan
            else N_(
                "the kernel's ISO-TP is not available on this CAN link (it needs a socketcan "
                "interface)"
            ),
            hint=N_(
                "Load the kernel module (modprobe can-isotp) and use --can-interface socketcan, "
                "or set [transport] isotp_stack = 'user'"
            ),
        )
    return "user"


def isotp_params(st_min: float, block_size: int) -> dict[str, object]:
    """can-isotp parameters from ISO names. STmin in seconds -> the ms encoding (0-127 ms); below
    1 ms can-isotp takes ``stmin`` 0 (as fast as possible)."""
    if not 0 <= st_min <= 0.127:
        raise ValueError("st_min must be 0..0.127 s")
    if not 0 <= block_size <= 255:
        raise ValueError("block_size must be 0..255")
    return {
        "stmin": int(round(st_min * 1000)),
        "blocksize": block_size,
        "tx_padding": 0xCC,
        "tx_data_min_length": 8,
        "rx_flowcontrol_timeout": 1000,
        "rx_consecutive_frame_timeout": 1000,
        "max_frame_size": 4095,
        "blocking_send": False,
    }


def isotp_address(
    address: int,
    addressing: str,
    normal_ids: Mapping[int, tuple[int, int]] | None,
    tester: int = BMW_TESTER,
) -> isotp.Address:
    if addressing == "bmw":
        return isotp.Address(
            isotp.AddressingMode.Extended_11bits,
            txid=BMW_REQUEST_ID,
            rxid=BMW_RESPONSE_BASE + address,
            target_address=address,
            source_address=tester,
        )
    if addressing == "normal":
        ids = (normal_ids or {}).get(address)
        if ids is None:
            raise UnknownTargetError(
                N_("no normal-addressing CAN identifiers are known for ECU 0x{address}"),
                values={"address": format(address, "02X")},
            )
        return isotp.Address(isotp.AddressingMode.Normal_11bits, txid=ids[0], rxid=ids[1])
    raise ValueError(f"addressing must be 'bmw' or 'normal', not {addressing!r}")


class CanLink:
    """ISO-TP channels over one CAN bus, one per ECU, created on first use."""

    kind = "can"

    def __init__(
        self,
        bus: can.BusABC,
        *,
        addressing: str = "bmw",
        normal_ids: Mapping[int, tuple[int, int]] | None = None,
        st_min: float = 0.0,
        block_size: int = 0,
        tester_address: int = BMW_TESTER,
        owns_bus: bool = False,
        trace_path: Path | None = None,
        isotp_stack: str = "auto",
    ) -> None:
        if addressing not in ("bmw", "normal"):
            raise ValueError(f"addressing must be 'bmw' or 'normal', not {addressing!r}")
        self.bus = bus
        self.addressing = addressing
        self.normal_ids = dict(normal_ids or {})
        self.params = isotp_params(st_min, block_size)
        self.tester_address = tester_address
        self.owns_bus = owns_bus
        self.isotp_stack = choose_isotp_stack(isotp_stack, bus)
        self.trace = CanTrace(trace_path) if trace_path is not None else None
        self.notifier = can.Notifier(bus, [self.trace] if self.trace else [], timeout=0.1)
        if self.trace is not None:
            send, trace = bus.send, self.trace

            def traced_send(msg: can.Message, timeout: float | None = None) -> None:
                send(msg, timeout)
                trace.tx(msg)

            bus.send = traced_send  # type: ignore[method-assign]  # can-isotp sends through bus.send
        self._connections: dict[int, BaseConnection] = {}
        self._obd_stacks: dict[int, isotp.TransportLayer] = {}
        self._lock = threading.Lock()
        self.description = (
            f"CAN {bus.channel_info} ({addressing} addressing, {self.isotp_stack} ISO-TP)"
        )
        log.info(
            "ISO-TP on %s: %s",
            bus.channel_info,
            "the kernel's (CAN_ISOTP sockets)"
            if self.isotp_stack == "kernel"
            else "can-isotp's user-space stack",
        )

    def _kernel_connection(self, address: int) -> IsoTPSocketConnection:
        """A kernel ISO-TP socket with the same parameters as the user-space stack gets."""
        tpsock = isotp.socket(timeout=0.1)
        tpsock.set_opts(txpad=int(self.params["tx_padding"]))  # type: ignore[call-overload]
        tpsock.set_fc_opts(
            bs=int(self.params["blocksize"]),  # type: ignore[call-overload]
            stmin=int(self.params["stmin"]),  # type: ignore[call-overload]
        )
        tpsock.set_ll_opts(mtu=isotp.socket.LinkLayerProtocol.CAN, tx_dl=8)
        return IsoTPSocketConnection(
            str(self.bus.channel),  # type: ignore[attr-defined]
            isotp_address(address, self.addressing, self.normal_ids, self.tester_address),
            name=f"can-0x{address:02X}",
            tpsock=tpsock,
        )

    def ecu_connection(self, address: int) -> BaseConnection:
        with self._lock:
            conn = self._connections.get(address)
            if conn is not None:
                return conn
            if self.isotp_stack == "kernel":
                conn = self._kernel_connection(address)
            else:
                stack = isotp.NotifierBasedCanStack(
                    self.bus,
                    self.notifier,
                    address=isotp_address(
                        address, self.addressing, self.normal_ids, self.tester_address
                    ),
                    params=dict(self.params),
                )
                conn = PythonIsoTpConnection(stack, name=f"can-0x{address:02X}")
            conn.max_payload = MAX_PAYLOAD  # type: ignore[union-attr]
            self._connections[address] = conn
            return conn

    def _obd_receivers(self) -> dict[int, isotp.TransportLayer]:
        """One ISO-TP receiver per OBD response identifier 0x7E8..0x7EF, sending its flow control
        to the matching request identifier 0x7E0..0x7E7 (ISO 15765-4). Always can-isotp's
        user-space stack, also when the kernel's carries the physical channels: the answers to
        a functional request come on eight identifiers at once, which one kernel socket per
        channel would need eight of. A user-space channel that already listens on one of them
        (normal addressing) is used as it is: two listeners would both send flow control."""
        with self._lock:
            listening = {  # the started user-space channels of normal addressing, by rxid
                layer.address.get_rx_arbitration_id(): layer
                for conn in self._connections.values()
                if (layer := getattr(getattr(conn, "subconn", None), "isotp_layer", None))
                and getattr(layer, "started", False)
            }
            receivers = {}
            for rxid in CAN_RESPONSE_IDS:
                stack = listening.get(rxid) or self._obd_stacks.get(rxid)
                if stack is None:
                    address = isotp.Address(
                        isotp.AddressingMode.Normal_11bits, txid=rxid - 8, rxid=rxid
                    )
                    stack = isotp.NotifierBasedCanStack(
                        self.bus, self.notifier, address=address, params=dict(self.params)
                    )
                    stack.start()
                    self._obd_stacks[rxid] = stack
                elif stack is listening.get(rxid) and rxid in self._obd_stacks:
                    self._obd_stacks.pop(rxid).stop()  # a channel opened since: it listens now
                receivers[rxid] = stack
            return receivers

    def functional_request(
        self, payload: bytes, *, window: float = OBD_WINDOW, expect: Collection[int] = ()
    ) -> dict[int, bytes]:
        """Send ``payload`` as one single frame on 0x7DF and collect the final answers by
        response identifier (:mod:`.functional`). A functional request is one frame by
        ISO 15765-4 (an OBD request has at most 7 bytes)."""
        if not 0 < len(payload) <= 7:
            raise ValueError("a functional request on CAN is 1..7 bytes (one single frame)")
        receivers = self._obd_receivers()
        for stack in receivers.values():  # stale answers of an earlier request
            while stack.available():
                stack.recv()
        frame = bytes([len(payload)]) + payload
        self.bus.send(
            can.Message(
                arbitration_id=CAN_FUNCTIONAL_ID,
                data=frame.ljust(8, b"\xcc"),
                is_extended_id=False,
            )
        )
        collector = Collector(payload[0], time.monotonic(), window=window, expect=expect)

        def receive(timeout: float) -> list[tuple[int, bytes]]:
            deadline = time.monotonic() + timeout
            while True:
                got = [
                    (rxid, bytes(data))
                    for rxid, stack in receivers.items()
                    if stack.available() and (data := stack.recv()) is not None
                ]
                if got or time.monotonic() >= deadline:
                    return got
                time.sleep(0.002)  # can-isotp's stacks queue what they receive; poll them

        return collect(collector, receive)

    def close(self) -> None:
        with self._lock:
            for conn in self._connections.values():
                if conn.is_open():
                    conn.close()
            self._connections.clear()
            for stack in self._obd_stacks.values():
                stack.stop()
            self._obd_stacks.clear()
        self.notifier.stop()
        if self.trace is not None:
            self.trace.stop()
        if self.owns_bus:
            self.bus.shutdown()


def open_can_link(
    bus: can.BusABC,
    *,
    addressing: str = "bmw",
    normal_ids: Mapping[int, tuple[int, int]] | None = None,
    st_min: float = 0.0,
    block_size: int = 0,
    tester_address: int = BMW_TESTER,
    owns_bus: bool = False,
    trace_path: Path | None = None,
    isotp_stack: str = "auto",
) -> CanLink:
    return CanLink(
        bus,
        addressing=addressing,
        normal_ids=normal_ids,
        st_min=st_min,
        block_size=block_size,
        tester_address=tester_address,
        owns_bus=owns_bus,
        trace_path=trace_path,
        isotp_stack=isotp_stack,
    )
