"""``EcuSession``: UDS with one ECU on udsoncan, behind our exception tree.

udsoncan encodes and decodes the services and waits out "response pending" (NRC 0x78) with
P2*, within one overall deadline per request (its ``request_timeout``: ours is
``UdsConfig.request_deadline``, or ``long_request_deadline`` for routines and the download
services, so that no ECU can hold the vehicle worker for ever); this class adds what the box needs around it: udsoncan's exceptions converted to ours at
this one adapter (an NRC by its ISO 14229 name, with a hint what to do), a lock so that the
tester-present keeper never interleaves with a request, and tester present (0x3E 0x80) sent
locally while a non-default session is open, so no session ever depends on a WAN round trip.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import udsoncan
from udsoncan import Request
from udsoncan.client import Client
from udsoncan.connections import BaseConnection
from udsoncan.exceptions import (
    ConfigError as UdsConfigError,
)
from udsoncan.exceptions import (
    InvalidResponseException,
    NegativeResponseException,
    TimeoutException,
    UnexpectedResponseException,
)
from udsoncan.ResponseCode import ResponseCode
from udsoncan.services import ReadDataByIdentifier, ReadDTCInformation

from firmware_py import heartbeat
from firmware_py.config import UdsConfig
from firmware_py.errors import (
    EcuNotRespondingError,
    NegativeResponseError,
    ResponseDeadlineError,
    SecurityAccessError,
    UnexpectedResponseError,
    VciError,
)
from firmware_py.i18n import N_, Text
from firmware_py.uds.dids import DidValues, did_codecs
from firmware_py.uds.security import SecurityProvider

log = logging.getLogger(__name__)
T = TypeVar("T")

SESSIONS = {"default": 0x01, "programming": 0x02, "extended": 0x03}
#: services that program or check memory, and routines: they get UdsConfig.long_request_deadline
LONG_SERVICES = frozenset({0x31, 0x34, 0x36, 0x37})

#: What a technician can do about an NRC (ISO 14229-1 table A.1 names come from udsoncan).
NRC_HINTS = {
    0x10: N_("The ECU rejected the request; repeat it, and if it persists reset the ECU"),
    0x11: N_("This ECU does not offer the service"),
    0x12: N_("This ECU does not offer this sub-function"),
    0x13: N_("The request has the wrong length for this ECU"),
    0x14: N_("The response would be too long for the transport"),
    0x21: N_("The ECU is busy; repeat the request in a moment"),
    0x22: N_("Conditions are not met: check ignition on, engine off, vehicle at standstill"),
    0x24: N_("Steps were done in the wrong order; start the job again"),
    0x31: N_("A value is out of range or not supported by this ECU"),
    0x33: N_("Security access is needed first (the job does it; check the seed/key algorithm)"),
    0x35: N_("The security key was wrong: check the seed/key algorithm for this ECU"),
    0x36: N_("Too many wrong security keys: wait for the ECU's delay (or cycle the ignition)"),
    0x37: N_("The ECU's security delay has not expired yet: wait and repeat"),
    0x70: N_("The ECU did not accept the download: erase first, check the address range"),
    0x71: N_("The transfer was suspended by the ECU: restart the segment"),
    0x72: N_("The ECU could not program its memory: check the supply voltage, then repeat"),
    0x73: N_("Block sequence counter mismatch: restart the segment"),
    0x7E: N_("Enter the right diagnostic session first (extended or programming)"),
    0x7F: N_("Enter the right diagnostic session first (extended or programming)"),
    0x92: N_("Supply voltage too high"),
    0x93: N_("Supply voltage too low: connect a battery charger"),
}


def nrc_name(code: int) -> str:
    name = ResponseCode.get_name(code)
    return name if name else f"NRC 0x{code:02X}"


class EcuSession:
    def __init__(
        self,
        connection: BaseConnection,
        *,
        name: str,
        address: int,
        timing: UdsConfig = UdsConfig(),
        security: SecurityProvider | None = None,
    ) -> None:
        self.name = name
        self.address = address
        self.timing = timing
        self.security = security
        self.connection = connection
        #: the largest UDS request the transport carries (ISO-TP on classic CAN: 4095 bytes)
        self.max_payload: int | None = getattr(connection, "max_payload", None)
        config = dict(udsoncan.configs.default_client_config)
        config.update(
            data_identifiers=did_codecs(),
            p2_timeout=timing.p2,
            p2_star_timeout=timing.p2_star,
            request_timeout=timing.request_deadline,  # overall, "response pending" included
            use_server_timing=False,  # keep our P2/P2*; a slow ECU's 0x78 restarts P2* anyway
            dtc_snapshot_did_size=2,
            extended_data_size=1,
            tolerate_zero_padding=True,
            ignore_all_zero_dtc=True,
            server_address_format=32,
            server_memorysize_format=32,
        )
        self.client = Client(connection, config=config)  # type: ignore[arg-type]
        self._lock = threading.RLock()
        self._session = 0x01
        self._keeper: threading.Thread | None = None
        self._stop_keeper = threading.Event()
        self._opened = False

    # -- lifetime ------------------------------------------------------------------------
    def open(self) -> EcuSession:
        with self._lock:
            if not self._opened:
                self.client.open()
                self._opened = True
        return self

    def close(self) -> None:
        self._stop_keeper.set()
        if self._keeper is not None and self._keeper is not threading.current_thread():
            self._keeper.join(timeout=2)
        with self._lock:
            if self._opened:
                self.client.close()
                self._opened = False

    def __enter__(self) -> EcuSession:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def session(self) -> int:
        return self._session

    # -- the one adapter from udsoncan's exceptions to ours ---------------------------------------
    def deadline_for(self, sid: int) -> float:
        """The overall deadline of a request with service ``sid``."""
        t = self.timing
        return t.long_request_deadline if sid in LONG_SERVICES else t.request_deadline

    def _deadline_error(self, what: str, deadline: float) -> ResponseDeadlineError:
        return ResponseDeadlineError(
            N_(
                'ECU {ecu} (0x{address}) answered {what} only with "response pending" for '
                "{deadline} s, the request's deadline; the box gave up"
            ),
            values={
                "ecu": self.name,
                "address": f"{self.address:02X}",
                "what": what,
                "deadline": f"{deadline:g}",
            },
        )

    def _silent_error(self, what: str, err: Exception) -> EcuNotRespondingError:
        return EcuNotRespondingError(
            N_("ECU {ecu} (0x{address}) did not answer {what}: {detail}"),
            values={"ecu": self.name, "address": f"{self.address:02X}", "what": what,
                    "detail": err},
        )  # fmt: skip

    def _call(self, what: str, fn: Callable[[], T], sid: int | None = None) -> T:
        deadline = self.deadline_for(sid) if sid is not None else self.timing.request_deadline
        heartbeat.beat()  # the wait below is bounded by ``deadline`` (the service watchdog)
        with self._lock:
            heartbeat.beat()  # and the wait for the lock (tester present) is over
            if not self._opened:
                self.open()
            # send_request reads it per request (set_config would also re-make its logger)
            self.client.config["request_timeout"] = deadline
            started = time.monotonic()
            try:
                return fn()
            except NegativeResponseException as err:
                code = int(err.response.code or 0)
                service = err.response.service.request_id() if err.response.service else 0
                raise NegativeResponseError(
                    service, code, nrc_name(code), ecu=self.name, hint=NRC_HINTS.get(code)
                ) from err
            except TimeoutException as err:
                if time.monotonic() - started >= deadline:  # P2 and P2* are shorter: it was pending
                    raise self._deadline_error(what, deadline) from err
                raise self._silent_error(what, err) from err
            except (InvalidResponseException, UnexpectedResponseException) as err:
                raise UnexpectedResponseError(
                    N_("ECU {name} (0x{address}) answered {what} wrongly: {err}"),
                    values={
                        "name": self.name,
                        "address": format(self.address, "02X"),
                        "what": what,
                        "err": err,
                    },
                ) from err
            except UdsConfigError as err:
                raise UnexpectedResponseError(
                    N_("ECU {name}: cannot decode the answer to {what}: {err}"),
                    values={"name": self.name, "what": what, "err": err},
                ) from err
            except VciError:
                raise
            except (ValueError, IndexError) as err:
                raise UnexpectedResponseError(
                    N_("ECU {name} (0x{address}) answered {what} with data we cannot read: {err}"),
                    values={
                        "name": self.name,
                        "address": format(self.address, "02X"),
                        "what": what,
                        "err": err,
                    },
                ) from err

    # -- services --------------------------------------------------------------------------
    def change_session(self, session: str | int) -> None:
        target = SESSIONS[session] if isinstance(session, str) else int(session)
        self._call(f"session control 0x{target:02X}", lambda: self.client.change_session(target))
        self._session = target
        if target == 0x01:
            self._stop_keeper.set()
        else:
            self._start_keeper()

    @contextmanager
    def in_session(self, session: str | int) -> Iterator[None]:
        """Work in ``session`` (tester present kept by the box) and return to the default session
        afterwards, whatever happened."""
        self.change_session(session)
        try:
            yield
        finally:
            self.change_session("default")

    def read_dids(self, *dids: int) -> DidValues:
        """ReadDataByIdentifier of known DIDs (:mod:`.dids`). A multi-DID request may be answered
        in part (ISO 14229-1: the ECU leaves out what it does not have): the values it gave are
        kept and the others are in ``.missing``. udsoncan's ``read_data_by_identifier`` raises
        then and loses the values, so this uses its request and decoding without that check."""
        didlist = list(dids)
        config = self.client.config

        def read() -> DidValues:
            codecs = config["data_identifiers"]
            request = ReadDataByIdentifier.make_request(didlist=didlist, didconfig=codecs)
            response = self.client.send_request(request)
            assert response is not None
            values = ReadDataByIdentifier.interpret_response(
                response,
                didlist=didlist,
                didconfig=codecs,
                tolerate_zero_padding=config["tolerate_zero_padding"],
            ).service_data.values
            extra = set(values) - set(didlist)
            if extra or not values:
                raise UnexpectedResponseError(
                    N_("ECU {name} answered DIDs {value} to a request for {value2}"),
                    values={
                        "name": self.name,
                        "value": sorted(extra) or Text(N_("none")),
                        "value2": " ".join(f"{d:04X}" for d in didlist),
                    },
                )
            return DidValues(values, tuple(d for d in didlist if d not in values))

        return self._call("read data by identifier", read, sid=0x22)

    def read_did_raw(self, did: int) -> bytes:
        response = self.raw(bytes([0x22, did >> 8, did & 0xFF]))
        if response[1:3] != bytes([did >> 8, did & 0xFF]):
            raise UnexpectedResponseError(
                N_("ECU {name} answered DID {did} with another DID"),
                values={"name": self.name, "did": format(did, "04X")},
            )
        return response[3:]

    def write_did(self, did: int, value: Any) -> None:
        self._call(f"write DID {did:04X}", lambda: self.client.write_data_by_identifier(did, value))

    def security_access(self, level: int) -> None:
        """Request seed for ``level`` (odd), compute the key with the configured algorithm, send it."""
        if level % 2 == 0:
            raise ValueError("security access level must be the odd requestSeed sub-function")
        response = self._call("request seed", lambda: self.client.request_seed(level))
        assert response is not None
        seed = bytes(response.service_data.seed)
        if not any(seed):
            return  # already unlocked
        if self.security is None:
            raise SecurityAccessError(
                N_("no seed/key algorithm for ECU {name}"), values={"name": self.name}
            )
        key = self.security.key(self.address, level, seed)
        self._call("send key", lambda: self.client.send_key(level + 1, key))

    def ecu_reset(self, reset_type: int = 0x01) -> None:
        self._call("ECU reset", lambda: self.client.ecu_reset(reset_type))
        self._session = 0x01
        self._stop_keeper.set()

    def clear_dtc(self, group: int = 0xFFFFFF) -> None:
        self._call("clear diagnostic information", lambda: self.client.clear_dtc(group))

    def routine(self, control: str, routine_id: int, data: bytes | None = None) -> bytes:
        """Routine control (0x31): ``control`` is start, stop or results; returns the status record."""
        ctype = {"start": 1, "stop": 2, "results": 3}[control]
        response = self._call(
            f"routine 0x{routine_id:04X} {control}",
            lambda: self.client.routine_control(routine_id, ctype, data),
            sid=0x31,
        )
        assert response is not None
        return bytes(response.service_data.routine_status_record or b"")

    def communication_control(self, control_type: int, communication_type: int = 0x01) -> None:
        self._call(
            "communication control",
            lambda: self.client.communication_control(control_type, communication_type),
        )

    def request_download(self, address: int, length: int) -> int:
        """RequestDownload (0x34); returns maxNumberOfBlockLength (SID + counter + data)."""
        location = udsoncan.MemoryLocation(address, length, address_format=32, memorysize_format=32)
        response = self._call(
            "request download", lambda: self.client.request_download(location), sid=0x34
        )
        assert response is not None
        return int(response.service_data.max_length)

    def transfer_data(self, counter: int, data: bytes) -> None:
        """TransferData (0x36): the flash hot path, so it goes straight to the connection.

        udsoncan's generic ``send_request`` looks its service classes up by walking every
        subclass and names response codes through ``inspect.getmembers`` on every call: measured,
        about 200 us per request, which capped 4 KiB-block flashing over DoIP near 19 MB/s.
        This loop does only what TransferData needs: send, wait P2 (P2* after each "response
        pending") within the request's overall deadline, check the echoed block sequence counter;
        everything else stays on udsoncan.
        """
        response = self._exchange(b"\x36" + bytes([counter]) + data, "transfer data")
        if len(response) < 2 or response[1] != counter:
            raise UnexpectedResponseError(
                N_("ECU {name} echoed block counter {value} for {counter}"),
                values={
                    "name": self.name,
                    "value": response[1:2].hex(),
                    "counter": format(counter, "02X"),
                },
            )

    def _exchange(self, request: bytes, what: str) -> bytes:
        heartbeat.beat()  # the wait below is bounded by the request's deadline
        with self._lock:
            heartbeat.beat()
            if not self._opened:
                self.open()
            conn = self.connection
            deadline = self.deadline_for(request[0])
            ends = time.monotonic() + deadline
            try:
                conn.send(request)
                timeout = self.timing.p2
                while True:
                    remaining = ends - time.monotonic()
                    if remaining <= 0:
                        raise self._deadline_error(what, deadline)
                    try:
                        response = conn.wait_frame(timeout=min(timeout, remaining), exception=True)
                    except TimeoutException:
                        if timeout >= remaining:  # P2/P2* would have outlasted the deadline
                            raise self._deadline_error(what, deadline) from None
                        raise
                    if response is None:
                        raise TimeoutException(N_("no response"))
                    if response[:1] == b"\x7f" and len(response) >= 3 and response[1] == request[0]:
                        if response[2] == 0x78:  # response pending: wait P2* for the next frame
                            timeout = self.timing.p2_star
                            continue
                        code = response[2]
                        raise NegativeResponseError(
                            request[0],
                            code,
                            nrc_name(code),
                            ecu=self.name,
                            hint=NRC_HINTS.get(code),
                        )
                    if response[:1] != bytes([request[0] + 0x40]):
                        raise UnexpectedResponseError(
                            N_("ECU {name} answered {what} with {value}"),
                            values={"name": self.name, "what": what, "value": response[:4].hex()},
                        )
                    return bytes(response)
            except TimeoutException as err:
                raise self._silent_error(what, err) from err

    def request_transfer_exit(self) -> None:
        self._call("request transfer exit", lambda: self.client.request_transfer_exit(), sid=0x37)

    def tester_present(self) -> None:
        self._call("tester present", lambda: self.client.tester_present())

    def raw(self, request: bytes) -> bytes:
        """Any UDS request; returns the positive response (an NRC raises)."""
        if not request:
            raise ValueError("empty UDS request")

        def send() -> bytes:
            response = self.client.send_request(Request.from_payload(request))
            assert response is not None
            return bytes(response.get_payload())

        return self._call(f"request {request[:3].hex()}", send, sid=request[0])

    # -- DTC services ------------------------------------------------------------------------------
    def dtcs_by_status_mask(self, mask: int, limit: int) -> tuple[list[udsoncan.Dtc], int]:
        """ReadDTCInformation 0x02, decoded by udsoncan: at most ``limit`` DTCs, and how many the
        ECU sent. The answer is cut to ``limit`` records before udsoncan decodes it (an object
        per DTC), so an ECU that reports hundreds of thousands costs its bytes, not gigabytes."""
        config = self.client.config

        def read() -> tuple[list[udsoncan.Dtc], int]:
            request = ReadDTCInformation.make_request(0x02, status_mask=mask)
            response = self.client.send_request(request)
            assert response is not None
            data = bytes(response.data or b"")
            sent = max(0, (len(data) - 2) // 4)  # echo, availability mask, then 4 bytes per DTC
            if sent > limit:
                response.data = data[: 2 + 4 * limit]
            dtcs = ReadDTCInformation.interpret_response(
                response,
                subfunction=0x02,
                tolerate_zero_padding=config["tolerate_zero_padding"],
                ignore_all_zero_dtc=config["ignore_all_zero_dtc"],
            ).service_data.dtcs
            return list(dtcs), sent

        return self._call("read DTC information", read, sid=0x19)

    def dtc_records(self, subfunction: int, dtc: int) -> bytes:
        """The records of 0x19 04 (snapshots) or 0x19 06 (extended data) for one DTC, all record
        numbers (0xFF), as bytes after the echoed DTC and status; decoded by :mod:`.dtc_records`
        (udsoncan needs one size for every extended record and a codec for every snapshot DID,
        which a real ECU's manufacturer records do not fit)."""
        what = "snapshot" if subfunction == 0x04 else "extended data"
        response = self.raw(bytes([0x19, subfunction]) + dtc.to_bytes(3, "big") + b"\xff")
        if response[1:2] != bytes([subfunction]) or (
            len(response) >= 5 and response[2:5] != dtc.to_bytes(3, "big")
        ):
            raise UnexpectedResponseError(
                N_("ECU {name} answered the {what} request for DTC {dtc} with {value}"),
                values={
                    "name": self.name,
                    "what": what,
                    "dtc": format(dtc, "06X"),
                    "value": response[:6].hex(" "),
                },
            )
        return response[6:]

    # -- tester present ---------------------------------------------------------------------------
    def _start_keeper(self) -> None:
        if self._keeper is not None and self._keeper.is_alive():
            return
        self._stop_keeper.clear()
        self._keeper = threading.Thread(
            target=self._keep_alive, daemon=True, name=f"tester-present-{self.name}"
        )
        self._keeper.start()

    def _keep_alive(self) -> None:
        while not self._stop_keeper.wait(self.timing.tester_present_interval):
            if self._session == 0x01:
                return
            try:
                with self._lock, self.client.suppress_positive_response:
                    self.client.tester_present()
            except Exception as err:  # noqa: BLE001 - the next real request reports the problem
                log.debug("tester present to %s failed: %s", self.name, err)

    @contextmanager
    def suppress_positive_response(self) -> Iterator[None]:
        with self._lock, self.client.suppress_positive_response:
            yield


__all__ = ["NRC_HINTS", "SESSIONS", "EcuSession", "nrc_name"]
