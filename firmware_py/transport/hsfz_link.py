"""HSFZ (BMW ENET) to the vehicle: identification on UDP 6811, and one TCP connection to 6801
that carries the diagnostic messages of every ECU behind the gateway (docs/enet.md).

The same shape as the DoIP link: per-ECU udsoncan connections multiplexed over one socket,
answers queued by source address (only for ECUs a connection was made for: anything else is
counted and dropped, so a chatty or hostile peer cannot grow memory), reconnect after the vehicle
dropped the connection, traces as pcap, and errors from our exception tree. No library speaks
HSFZ for a tester (Scapy's socket has no acknowledgement handling or reconnect), so the framing
is our sans-I/O codec in :mod:`.hsfz` and this module only does the I/O.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from pathlib import Path

from udsoncan.exceptions import TimeoutException

from firmware_py.errors import (
    ConnectionLostError,
    FrameError,
    UnknownTargetError,
    VehicleNotFoundError,
)
from firmware_py.i18n import N_
from firmware_py.transport import hsfz
from firmware_py.transport.ecu_connection import GatewayEcuConnection
from firmware_py.transport.hsfz import ControlWord, Decoder, Frame, HsfzIdentity
from firmware_py.transport.mux import GatewayQueues
from firmware_py.transport.trace import DoipTrace
from firmware_py.transport.udp import identification_socket

log = logging.getLogger(__name__)


def discover_hsfz(
    host: str = "255.255.255.255", port: int = hsfz.CONTROL_PORT, *, timeout: float = 1.0
) -> list[tuple[str, HsfzIdentity]]:
    """Ask for vehicle identification on UDP (broadcast when ``host`` is a broadcast address)
    and collect the answers that arrive within ``timeout``: ``(address, identity)`` each."""
    found: list[tuple[str, HsfzIdentity]] = []
    with identification_socket(host) as sock:
        try:
            sock.sendto(hsfz.IDENTIFICATION_REQUEST, (host, port))
        except OSError as err:
            raise VehicleNotFoundError(
                N_("cannot send HSFZ identification to {host}: {err}"),
                values={"host": host, "err": err},
            ) from err
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0 and len(found) < 64:
            sock.settimeout(remaining)
            try:
                data, addr = sock.recvfrom(2048)
            except (TimeoutError, OSError):
                break
            try:
                found.append((addr[0], hsfz.parse_identification(data)))
            except FrameError as err:
                log.info("ignoring an HSFZ identification answer from %s: %s", addr[0], err)
                continue
            if not host.endswith(".255"):
                break  # one gateway answers a unicast request
    return found


class HsfzLink:
    """One HSFZ connection to a vehicle, shared by the ECUs behind its gateway."""

    kind = "hsfz"

    def __init__(
        self,
        host: str,
        port: int = hsfz.DIAG_PORT,
        *,
        tester_address: int = hsfz.TESTER_ADDRESS,
        connect_timeout: float = 2.0,
        ack_timeout: float = 2.0,
        trace_path: Path | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.tester_address = tester_address
        self.connect_timeout = connect_timeout
        self.ack_timeout = ack_timeout
        self.trace_path = trace_path
        self.trace: DoipTrace | None = None
        self._lock = threading.RLock()
        """one writer at a time; (re)connecting and closing"""
        self._answers: GatewayQueues[Frame] = GatewayQueues("HSFZ")
        """answers by ECU; acknowledgements and gateway errors by the target of the message in
        flight; who reads the socket (several threads, different ECUs)"""
        self._sock: socket.socket | None = None
        self._decoder = Decoder()
        self._connect()
        self.description = f"HSFZ {host}:{port}"

    # -- the connection -----------------------------------------------------------------------
    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as err:
            raise VehicleNotFoundError(
                N_("no HSFZ gateway answers at {host}:{port}: {err}"),
                values={"host": self.host, "port": self.port, "err": err},
                hint=N_("Check the ENET cable and that the car is awake (ignition on)"),
            ) from err
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._decoder = sock, Decoder()
        self._poller = select.poll()  # one registration per socket: cheaper than select()
        self._poller.register(sock, select.POLLIN)
        self.connects = getattr(self, "connects", 0) + 1  # VehicleSession.connects
        if self.trace_path is not None and self.trace is None:
            self.trace = DoipTrace(self.trace_path, sock.getsockname()[:2], sock.getpeername()[:2])

    def reconnect(self) -> None:
        with self._lock:
            self._close_socket()
            self._answers.clear()
            self._connect()
            log.info("HSFZ connection to %s:%d re-established", self.host, self.port)

    def _close_socket(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def close(self) -> None:
        with self._lock:
            self._close_socket()
            if self.trace is not None:
                self.trace.close()

    def ecu_connection(self, address: int) -> HsfzEcuConnection:
        self._answers.watch(address & 0xFF)
        return HsfzEcuConnection(self, address & 0xFF)

    def stats(self) -> dict[str, int]:
        return self._answers.stats()

    @property
    def dropped(self) -> int:
        """frames from addresses nobody listens to, or beyond MAX_QUEUED"""
        return self._answers.dropped

    # -- used by the per-ECU connections (several threads: see .mux) -----------------------------
    def _broken(
        self, why: str, err: Exception | None = None, sock: socket.socket | None = None
    ) -> ConnectionLostError:
        """The error of a broken connection; ``why`` is a marked template with {host}, {port} and
        {err} (``err``) as it needs."""
        with self._lock:
            if sock is None or sock is self._sock:  # not one that replaced it meanwhile
                self._close_socket()
        values = {"host": self.host, "port": self.port} | ({"err": err} if err else {})
        return ConnectionLostError(why, values=values)

    def _write(self, frame: Frame) -> None:
        with self._lock:
            if self._sock is None:
                self.reconnect()  # the vehicle dropped us (reset, sleep): connect again
            assert self._sock is not None
            data = frame.encode()
            try:
                self._sock.sendall(data)
            except OSError as err:
                raise self._broken(
                    N_("the HSFZ connection to {host}:{port} broke: {err}"), err
                ) from err
            if self.trace is not None:
                self.trace.tx(data)

    def _read(self, timeout: float) -> None:
        """Read what arrives within ``timeout`` (the reader's turn, outside the queues' lock)
        and sort it: answers to the ECUs' queues, acknowledgements to ``_acks``; the gateway's
        alive checks are answered here. Waits with ``select`` and leaves the socket's timeout
        alone: other threads send on it meanwhile."""
        sock, decoder, poller = self._sock, self._decoder, self._poller
        if sock is None:
            raise ConnectionLostError(
                N_("the HSFZ connection to {host}:{port} is closed"),
                values={"host": self.host, "port": self.port},
            )
        try:
            if not poller.poll(max(timeout, 0.0) * 1000):
                return
            data = sock.recv(256 * 1024)
        except (OSError, ValueError) as err:  # ValueError: closed by another thread meanwhile
            raise self._broken(
                N_("the HSFZ connection to {host}:{port} broke: {err}"), err, sock=sock
            ) from err
        if not data:
            raise self._broken(
                N_("the HSFZ connection to {host}:{port} was closed by the vehicle"), sock=sock
            )
        if self.trace is not None:
            self.trace.rx(data)
        try:
            frames = decoder.feed(data)
        except FrameError as err:
            self._broken(N_("the HSFZ connection to {host}:{port} is out of step"), sock=sock)
            raise FrameError(
                N_("the vehicle's HSFZ stream is out of step: {err}"), values={"err": err}
            ) from err
        for frame in frames:
            if frame.control == ControlWord.ALIVE_CHECK:
                self._write(Frame(ControlWord.ALIVE_CHECK, bytes([self.tester_address])))
                continue
            with self._answers.turn.cond:
                self._sort(frame)

    def _sort(self, frame: Frame) -> None:
        answers = self._answers
        if frame.control == ControlWord.DIAGNOSTIC_MESSAGE and frame.addressed:
            if frame.target == self.tester_address:
                answers.put(frame.source, frame.payload)
            else:
                answers.drop(frame.source, f"for tester 0x{frame.target:02X}, not us")
        elif frame.addressed and (
            frame.control == ControlWord.ACKNOWLEDGE or frame.control in hsfz.ERRORS
        ):
            answers.put_ack(frame.target, frame)  # names its message's target
        elif frame.control in hsfz.ERRORS:
            # a gateway error without addresses goes to every sender waiting (with one sender,
            # to that one)
            for acks in answers.acks.values():
                acks.append(frame)
        else:
            log.debug("HSFZ: ignored %s", frame.describe())

    def send(self, target: int, payload: bytes) -> None:
        frame = hsfz.diagnostic_message(self.tester_address, target, payload)
        ack = self._answers.request(
            target, lambda: self._write(frame), self.ack_timeout, self._read
        )
        if ack is None:
            raise TimeoutException(
                f"no HSFZ acknowledgement for ECU 0x{target:02X} within {self.ack_timeout} s"
            )
        if ack.control == ControlWord.ACKNOWLEDGE:
            return
        if ack.control == ControlWord.INCORRECT_DESTINATION_ADDRESS:
            raise UnknownTargetError(
                N_("the vehicle's gateway knows no ECU at address 0x{target}"),
                values={"target": format(target, "02X")},
            )
        raise FrameError(
            N_("the gateway refused the message for 0x{target} ({value})"),
            values={
                "target": format(target, "02X"),
                "value": ControlWord(ack.control).name.lower().replace("_", " "),
            },
        )

    def receive(self, source: int, timeout: float) -> bytes | None:
        return self._answers.receive(source, timeout, self._read)

    def drop_queued(self, source: int) -> None:
        self._answers.drop_queued(source)


class HsfzEcuConnection(GatewayEcuConnection):
    """A udsoncan connection to one ECU behind the HSFZ gateway."""

    max_payload = hsfz.MAX_DATA - 2  # the largest UDS message we send (addresses take 2 bytes)

    def __init__(self, link: HsfzLink, address: int) -> None:
        super().__init__(link, address, f"hsfz-0x{address:02X}")


def open_hsfz_link(
    host: str,
    port: int = hsfz.DIAG_PORT,
    *,
    tester_address: int = hsfz.TESTER_ADDRESS,
    connect_timeout: float = 2.0,
    trace_path: Path | None = None,
    control_port: int | None = None,
) -> HsfzLink:
    """Connect to the vehicle's HSFZ gateway; with ``trace_path`` the connection's frames are
    written there as pcap (IPv4/TCP, so Wireshark's HSFZ dissector on 6801 reads them). With
    ``control_port``, identification is sent to ``host`` (unicast, or broadcast on the ENET
    link) first and the connection goes to the gateway that answered, at its address; a unicast
    ``host`` that does not answer is connected to all the same."""
    if control_port is not None:
        found = discover_hsfz(host, control_port, timeout=connect_timeout)
        if found:
            host = found[0][0]
        elif host.endswith(".255"):
            raise VehicleNotFoundError(
                N_("no vehicle answered HSFZ identification at {host} (UDP {control_port})"),
                values={"host": host, "control_port": control_port},
                hint=N_("Check the ENET cable and that the car is awake (ignition on)"),
            )
    return HsfzLink(
        host,
        port,
        tester_address=tester_address,
        connect_timeout=connect_timeout,
        trace_path=trace_path,
    )
