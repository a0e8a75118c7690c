"""A udsoncan connection to one ECU behind a vehicle gateway that multiplexes many ECUs over one
socket (DoIP, HSFZ): the link sends, acknowledges and queues answers by source address; this class
is what udsoncan's client talks to."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from udsoncan.connections import BaseConnection
from udsoncan.exceptions import TimeoutException

log = logging.getLogger(__name__)
TRACE = 5


class MultiplexingLink(Protocol):
    def send(self, target: int, payload: bytes) -> None: ...
    def receive(self, source: int, timeout: float) -> bytes | None: ...
    def drop_queued(self, source: int) -> None: ...


class GatewayEcuConnection(BaseConnection):
    """One ECU's connection over a shared gateway link."""

    max_payload = 0xFFFF
    """the largest UDS message the link carries (subclasses give their protocol's)"""

    def __init__(self, link: MultiplexingLink, address: int, name: str) -> None:
        super().__init__(name)
        self.link = link
        self.address = address
        self.opened = False

    def open(self) -> GatewayEcuConnection:
        self.opened = True
        return self

    def close(self) -> None:
        self.opened = False

    def is_open(self) -> bool:
        return self.opened

    # udsoncan's BaseConnection.send/wait_frame hexlify every payload for a debug line even when
    # debug logging is off (a measurable cost per 4 KiB TransferData); these two keep their
    # behaviour and log frames only at our TRACE level.
    def send(self, data: Any, timeout: float | None = None) -> None:
        self.check_connection_opened()
        payload = data.get_payload() if hasattr(data, "get_payload") else data
        if log.isEnabledFor(TRACE):
            log.log(TRACE, "UDS tx 0x%02X %s", self.address, bytes(payload).hex(" "))
        self.specific_send(payload)

    def wait_frame(self, timeout: float | None = None, exception: bool = False) -> bytes | None:
        self.check_connection_opened()
        try:
            frame = self.specific_wait_frame(timeout=timeout)
        except Exception:
            if exception:
                raise
            return None
        if frame is not None and log.isEnabledFor(TRACE):
            log.log(TRACE, "UDS rx 0x%02X %s", self.address, frame.hex(" "))
        return frame

    def specific_send(self, payload: bytes, timeout: float | None = None) -> None:
        self.link.send(self.address, bytes(payload))

    def specific_wait_frame(self, timeout: float | None = 2.0) -> bytes | None:
        data = self.link.receive(self.address, 2.0 if timeout is None else timeout)
        if data is None:
            # udsoncan's own exception, which takes a message only (no values): the client
            # waits for it; firmware_py/uds/ecu.py turns it into EcuNotRespondingError
            raise TimeoutException(f"no response from ECU 0x{self.address:02X} within {timeout} s")
        return data

    def empty_rxqueue(self) -> None:
        self.link.drop_queued(self.address)
