"""DoIP (ISO 13400-2) to the vehicle with doipclient: discovery, routing activation, and one
TCP connection that carries the diagnostic messages of every ECU behind the gateway.

doipclient does the protocol; this module adds what a workshop tester needs on top of it:
per-ECU UDS connections multiplexed over the one socket (the gateway refuses a second tester
with the same source address), responses queued by source address, reconnect plus routing
activation after the vehicle dropped the connection, and errors from our exception tree.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import doipclient.client as doip_client_module
from doipclient import DoIPClient
from doipclient.messages import (
    AliveCheckRequest,
    AliveCheckResponse,
    DiagnosticMessage,
    DiagnosticMessageNegativeAcknowledgement,
    DiagnosticMessagePositiveAcknowledgement,
    GenericDoIPNegativeAcknowledge,
    ReservedMessage,
    RoutingActivationResponse,
    VehicleIdentificationRequest,
    VehicleIdentificationRequestWithEID,
    VehicleIdentificationRequestWithVIN,
    VehicleIdentificationResponse,
    payload_type_to_message,
)
from udsoncan.exceptions import TimeoutException

from firmware_py.errors import (
    ConnectionLostError,
    FrameError,
    RoutingActivationError,
    UnknownTargetError,
    VehicleNotFoundError,
)
from firmware_py.i18n import N_
from firmware_py.transport.doip_frames import HEADER, pack_message
from firmware_py.transport.ecu_connection import GatewayEcuConnection
from firmware_py.transport.functional import DOIP_FUNCTIONAL_ADDRESS, OBD_WINDOW
from firmware_py.transport.mux import GatewayQueues
from firmware_py.transport.trace import DoipTrace
from firmware_py.transport.udp import identification_socket

log = logging.getLogger(__name__)
TRACE = 5
MAX_PAYLOAD = 16 * 1024 * 1024  # the largest DoIP message we send (TransferData blocks)
#: the largest DoIP message accepted from the vehicle (checked in the header, before any of it is
#: kept): a UDS answer of 1 MiB is far beyond any ECU's; a longer one is skipped unbuffered
MAX_RECEIVE_PAYLOAD = 1024 * 1024


@dataclass(frozen=True)
class DoipAnnouncement:
    """A vehicle's answer to identification (ISO 13400-2 table 22)."""

    vin: str
    logical_address: int
    eid: bytes
    gid: bytes
    host: str
    port: int
    further_action: int

    def to_dict(self) -> dict[str, object]:
        return {
            "vin": self.vin,
            "logical_address": self.logical_address,
            "eid": self.eid.hex(),
            "gid": self.gid.hex(),
            "host": self.host,
            "port": self.port,
            "further_action": self.further_action,
        }


# --- the one place where doipclient 1.2.2 is worked around --------------------------------------
#
# doipclient 1.2.2 formats a hex dump of every payload for a logger.debug() line even when debug
# logging is off (client.py: DoIPClient.send_doip and Parser.read_message use str.format eagerly).
# Measured on a 2-core test machine that formatting is 93 % of the time of a TransferData loop and
# caps it near 5 MB/s. Its parser also pops header bytes one by one off the front of a bytearray
# and grows the payload by slicing the receive buffer. _FastParser and _FastDoIPClient replace
# exactly those two methods (same behaviour, frame dumps only at our TRACE level); everything
# else - messages, activation, alive check - stays doipclient's.


class _FastParser(doip_client_module.Parser):
    """doipclient's generic-header parser without the per-message hex dump."""

    trace: Callable[[bytes], None] | None = None
    """called with every whole DoIP message received (header and payload)"""

    def reset(self) -> None:
        super().reset()
        self._buf = bytearray()
        self._skip = 0  # bytes of a refused (oversized) payload still to pass over

    def push_bytes(self, data_bytes: bytes) -> None:
        self._buf += data_bytes

    def read_message(self, data_bytes: bytes) -> object:
        if self._skip:
            passed = min(self._skip, len(data_bytes))
            self._skip -= passed
            data_bytes = data_bytes[passed:]
        buf = self._buf
        buf += data_bytes
        while len(buf) >= 8:
            version, inverse, payload_type, length = HEADER.unpack_from(buf)
            if inverse != version ^ 0xFF:
                log.warning("bad DoIP header from the vehicle (inverse version), skipping a byte")
                del buf[0]  # resynchronise as doipclient does
                continue
            if length > MAX_RECEIVE_PAYLOAD:
                # skip it as it arrives, never keeping it; the stream stays in step
                kept = min(len(buf) - 8, length)
                self._skip = length - kept
                del buf[: 8 + kept]
                raise FrameError(
                    N_(
                        "the vehicle sent a DoIP message (type 0x{payload_type}) of {length} bytes, more than the box accepts ({max_receive_payload}); it was dropped"
                    ),
                    values={
                        "payload_type": format(payload_type, "04X"),
                        "length": length,
                        "max_receive_payload": MAX_RECEIVE_PAYLOAD,
                    },
                    hint=N_("Repeat the request; if it persists the ECU or gateway is faulty"),
                )
            if len(buf) < 8 + length:
                return None
            payload = bytes(buf[8 : 8 + length])
            if self.trace is not None:
                self.trace(bytes(buf[: 8 + length]))
            del buf[: 8 + length]
            self.protocol_version, self.payload_type, self.payload_size = (
                version,
                payload_type,
                length,
            )
            if log.isEnabledFor(TRACE):
                log.log(TRACE, "DoIP rx type 0x%04X %s", payload_type, payload.hex(" "))
            message_class: Any = payload_type_to_message.get(payload_type)
            try:
                if message_class is None:
                    return ReservedMessage.unpack(payload_type, payload, length)
                return message_class.unpack(payload, length)
            except (struct.error, IndexError, ValueError) as err:
                raise FrameError(
                    N_("malformed DoIP message type 0x{payload_type} from the vehicle: {err}"),
                    values={"payload_type": format(payload_type, "04X"), "err": err},
                ) from err
        return None


class _FastDoIPClient(DoIPClient):
    """doipclient's client with :class:`_FastParser` and a ``send_doip`` without the hex dump."""

    def __init__(self, *args: object, trace: DoipTrace | None = None, **kwargs: object) -> None:
        self.trace = trace  # before doipclient's __init__, which already sends (routing activation)
        self.send_lock = threading.Lock()  # the reading thread answers alive checks: one writer
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._tcp_parser = _FastParser()
        self._udp_parser = _FastParser()
        self._tcp_parser.trace = trace.rx if trace else None

    def reconnect(self, close_delay: float = 0.0) -> None:
        super().reconnect(close_delay=close_delay)
        self._tcp_parser = _FastParser()
        self._udp_parser = _FastParser()
        self._tcp_parser.trace = self.trace.rx if self.trace else None

    def send_doip(
        self,
        payload_type,
        payload_data,
        transport=DoIPClient.TransportType.TRANSPORT_TCP,
        disable_retry=False,
    ):  # type: ignore[no-untyped-def]
        data = self._pack_doip(self._protocol_version, payload_type, payload_data)
        if log.isEnabledFor(TRACE):
            log.log(TRACE, "DoIP tx type 0x%04X %s", payload_type, bytes(payload_data).hex(" "))
        if transport == DoIPClient.TransportType.TRANSPORT_TCP:
            with self.send_lock:
                self._tcp_sock.sendall(data)
                if self.trace is not None:
                    self.trace.tx(data)
        else:
            self._udp_sock.sendto(data, (self._ecu_ip_address, self._udp_port))


# --- discovery -------------------------------------------------------------------------------------


def discover_doip(
    host: str = "255.255.255.255",
    port: int = 13400,
    timeout: float = 1.0,
    *,
    vin: str | None = None,
    eid: bytes | None = None,
    protocol_version: int = 0x02,
) -> list[DoipAnnouncement]:
    """Vehicle identification request (ISO 13400-2 table 20-22) by unicast to ``host`` or, for a
    broadcast address, to every DoIP entity on the link, with ``protocol_version`` in its header
    (as every message the link sends). Returns each vehicle that answered within ``timeout`` (at
    most once per VIN and address)."""
    if eid is not None:
        message: object = VehicleIdentificationRequestWithEID(eid)
    elif vin is not None:
        message = VehicleIdentificationRequestWithVIN(vin)
    else:
        message = VehicleIdentificationRequest()
    datagram = pack_message(message, protocol_version)
    found: dict[tuple[str, str], DoipAnnouncement] = {}
    with identification_socket(host) as sock:
        try:
            sock.sendto(datagram, (host, port))
        except OSError as err:
            raise VehicleNotFoundError(
                N_("cannot send DoIP vehicle identification to {host}:{port}: {err}"),
                values={"host": host, "port": port, "err": err},
            ) from err
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            try:
                data, (src, src_port) = sock.recvfrom(4096)
            except TimeoutError:
                break
            except OSError as err:  # ICMP port unreachable (udp.identification_socket)
                log.debug("discovery: %s", err)
                break
            parser = _FastParser()
            try:
                answer = parser.read_message(data)
            except FrameError as err:
                log.warning("discovery: ignoring a malformed answer from %s: %s", src, err)
                continue
            if isinstance(answer, VehicleIdentificationResponse):
                unicast = not host.endswith(".255")
                vin_text = (
                    answer.vin
                    if isinstance(answer.vin, str)
                    else bytes(answer.vin).decode("ascii", "replace")
                )
                found[(vin_text, src)] = DoipAnnouncement(
                    vin_text,
                    answer.logical_address,
                    bytes(answer.eid),
                    bytes(answer.gid),
                    src,
                    src_port,
                    int(answer.further_action_required),
                )
                if unicast:
                    break  # one entity answers a unicast request
    return list(found.values())


# --- the link ----------------------------------------------------------------------------------------


class DoipLink:
    """One DoIP connection to a vehicle, shared by the ECUs behind its gateway."""

    kind = "doip"

    def __init__(
        self,
        host: str,
        port: int = 13400,
        *,
        tester_address: int = 0x0E80,
        gateway_address: int | None = None,
        connect_timeout: float = 2.0,
        ack_timeout: float = 2.0,
        trace_path: Path | None = None,
        protocol_version: int = 0x02,
    ) -> None:
        self.host, self.port = host, port
        self.protocol_version = protocol_version
        self.trace_path = trace_path
        self.trace: DoipTrace | None = None
        self.tester_address = tester_address
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self._lock = threading.RLock()
        """one sender at a time; (re)connecting and closing"""
        self._answers: GatewayQueues[object] = GatewayQueues("DoIP")
        """answers by ECU and acknowledgements by target; who reads the socket (several
        threads, different ECUs)"""
        self._broken = False
        self.gateway_address = gateway_address if gateway_address is not None else 0
        self.client = self._connect()
        self.description = f"DoIP {host}:{port} gateway 0x{self.gateway_address:04X}"

    def _connect(self) -> _FastDoIPClient:
        try:
            client = _FastDoIPClient(
                self.host,
                self.gateway_address,
                tcp_port=self.port,
                udp_port=self.port,
                client_logical_address=self.tester_address,
                auto_reconnect_tcp=False,
                protocol_version=self.protocol_version,
            )
            if self.trace_path is not None:
                if self.trace is None:
                    local, remote = (
                        client._tcp_sock.getsockname()[:2],
                        client._tcp_sock.getpeername()[:2],
                    )
                    self.trace = DoipTrace(self.trace_path, local, remote)
                client.trace = self.trace
                client._tcp_parser.trace = self.trace.rx
        except ConnectionRefusedError as err:
            text = str(err)
            if "Activation Request failed" in text:
                raise RoutingActivationError(
                    N_("the vehicle at {host}:{port} refused routing activation ({text})"),
                    values={"host": self.host, "port": self.port, "text": text},
                    hint=N_(
                        "Another tester may be connected with the same address; disconnect it or use --tester-address"
                    ),
                ) from err
            raise VehicleNotFoundError(
                N_("no DoIP entity answers at {host}:{port}: {err}"),
                values={"host": self.host, "port": self.port, "err": err},
            ) from err
        except (TimeoutError, OSError) as err:
            raise VehicleNotFoundError(
                N_("no DoIP entity answers at {host}:{port}: {err}"),
                values={"host": self.host, "port": self.port, "err": err},
            ) from err
        # The routing activation response names the gateway's logical address.
        self._broken = False
        self.connects = getattr(self, "connects", 0) + 1  # VehicleSession.connects
        return client

    def reconnect(self) -> None:
        with self._lock:
            try:
                self.client.close()
            except OSError:
                pass
            self._answers.clear()
            self.client = self._connect()
            log.info("DoIP connection to %s:%d re-established", self.host, self.port)

    def close(self) -> None:
        with self._lock:
            try:
                self.client.close()
            except OSError:
                pass
            if self.trace is not None:
                self.trace.close()

    def ecu_connection(self, address: int) -> DoipEcuConnection:
        self._answers.watch(address)
        return DoipEcuConnection(self, address)

    def stats(self) -> dict[str, int]:
        return self._answers.stats()

    @property
    def dropped(self) -> int:
        """diagnostic messages dropped: from addresses nobody asked, or over MAX_QUEUED"""
        return self._answers.dropped

    # -- used by the per-ECU connections (several threads: see .mux) -----------------------------
    def _read(self, timeout: float) -> None:
        """Read one message (the reader's turn, outside the queues' lock) and sort it."""
        client = self.client
        try:
            message = client.read_doip(timeout=timeout)
        except TimeoutError:
            if client._tcp_close_detected:
                self._broken = self._broken or client is self.client
                raise ConnectionLostError(
                    N_("the vehicle at {host}:{port} closed the DoIP connection"),
                    values={"host": self.host, "port": self.port},
                ) from None
            return None
        except OSError as err:
            if "Negative Acknowledge" in str(err):  # doipclient raises IOError for a generic NACK
                raise FrameError(
                    N_("the vehicle refused our DoIP message: {err}"), values={"err": err}
                ) from err
            self._broken = self._broken or client is self.client  # not a socket replaced meanwhile
            raise ConnectionLostError(
                N_("the DoIP connection to {host}:{port} broke: {err}"),
                values={"host": self.host, "port": self.port, "err": err},
            ) from err
        if isinstance(message, AliveCheckRequest):
            client.send_doip_message(AliveCheckResponse(self.tester_address))
            return
        if isinstance(message, GenericDoIPNegativeAcknowledge):
            raise FrameError(
                N_("the vehicle sent a generic DoIP NACK (code {nack_code})"),
                values={"nack_code": message.nack_code},
            )
        with self._answers.turn.cond:
            if isinstance(message, DiagnosticMessage):
                self._answers.put(message.source_address, bytes(message.user_data))
            elif isinstance(
                message,
                DiagnosticMessagePositiveAcknowledgement | DiagnosticMessageNegativeAcknowledgement,
            ):
                self._answers.put_ack(message.source_address, message)

    def _write(self, target: int, payload: bytes) -> None:
        with self._lock:
            if self._broken:
                self.reconnect()  # the vehicle dropped us (reset, sleep): connect and activate again
            try:
                self.client.send_doip_message(
                    DiagnosticMessage(self.tester_address, target, payload)
                )
            except (ConnectionResetError, BrokenPipeError, OSError) as err:
                self._broken = True
                raise ConnectionLostError(
                    N_("the DoIP connection to {host}:{port} broke: {err}"),
                    values={"host": self.host, "port": self.port, "err": err},
                ) from err

    def send(self, target: int, payload: bytes) -> None:
        message = self._answers.request(
            target, lambda: self._write(target, payload), self.ack_timeout, self._read
        )
        if message is None:
            # udsoncan's own exception (its Connection interface asks for it; it takes a message
            # only): firmware_py/uds/ecu.py turns it into EcuNotRespondingError, a template
            raise TimeoutException(
                f"no DoIP acknowledgement for ECU 0x{target:02X} within {self.ack_timeout} s"
            )
        if isinstance(message, DiagnosticMessageNegativeAcknowledgement):
            if message.nack_code == 0x03:
                raise UnknownTargetError(
                    N_("the vehicle's gateway knows no ECU at address 0x{target}"),
                    values={"target": format(target, "02X")},
                )
            raise FrameError(
                N_("the gateway refused the message for 0x{target} (DoIP NACK code {nack_code})"),
                values={"target": format(target, "02X"), "nack_code": message.nack_code},
            )

    def receive(self, source: int, timeout: float) -> bytes | None:
        return self._answers.receive(source, timeout, self._read)

    def functional_request(
        self, payload: bytes, *, window: float = OBD_WINDOW, expect: Collection[int] = ()
    ) -> dict[int, bytes]:
        """Send ``payload`` to the functional address 0xE400 (ISO 13400-2) and collect the final
        answers by ECU address (:mod:`.functional`). Meanwhile every diagnostic message read
        counts as an answer to it: run it with no other request in flight on this link (the
        vehicle worker runs one job at a time)."""
        # doipclient's read_doip checks its timeout only between recv() calls, and its socket
        # waits up to A_PROCESSING_TIME (2 s) in each: while collecting, the socket waits no
        # longer than one turn of the collection loop.
        with self._lock:
            sock = self.client._tcp_sock
        before = sock.gettimeout()
        sock.settimeout(0.05)
        try:
            return self._answers.functional_request(
                lambda: self.send(DOIP_FUNCTIONAL_ADDRESS, payload),
                self._read,
                payload[0],
                window=window,
                expect=expect,
            )
        finally:
            sock.settimeout(before)

    def drop_queued(self, source: int) -> None:
        self._answers.drop_queued(source)


class DoipEcuConnection(GatewayEcuConnection):
    """A udsoncan connection to one ECU behind the DoIP gateway."""

    max_payload = MAX_PAYLOAD - 4  # the largest UDS message we send (DoIP addresses take 4 bytes)

    def __init__(self, link: DoipLink, address: int) -> None:
        super().__init__(link, address, f"doip-0x{address:02X}")


def open_doip_link(
    host: str,
    port: int = 13400,
    *,
    tester_address: int = 0x0E80,
    gateway_address: int | None = None,
    connect_timeout: float = 2.0,
    trace_path: Path | None = None,
    protocol_version: int = 0x02,
) -> DoipLink:
    """Connect to the vehicle's DoIP entity and activate routing. With no ``gateway_address`` the
    address comes from a vehicle identification sent to ``host`` (unicast, or broadcast on the
    ENET link), and the connection goes to the entity that answered, at the address it answered
    from. With ``trace_path`` the connection's DoIP messages are written there as pcap
    (:mod:`.trace`)."""
    if gateway_address is None:
        found = discover_doip(
            host, port, timeout=connect_timeout, protocol_version=protocol_version
        )
        if not found:
            raise VehicleNotFoundError(
                N_("no vehicle answered DoIP identification at {host}:{port}"),
                values={"host": host, "port": port},
            )
        host, gateway_address = found[0].host, found[0].logical_address
    return DoipLink(
        host,
        port,
        tester_address=tester_address,
        gateway_address=gateway_address,
        connect_timeout=connect_timeout,
        trace_path=trace_path,
        protocol_version=protocol_version,
    )


__all__ = [
    "DoipAnnouncement",
    "DoipEcuConnection",
    "DoipLink",
    "RoutingActivationResponse",
    "discover_doip",
    "open_doip_link",
]
