"""A python-can bus that connects processes on one machine over UDP multicast on 127.0.0.1.

Why not python-can's own ``udp_multicast`` interface: it joins the multicast group on every
interface (``INADDR_ANY``) and sends through the default route, so simulated CAN traffic and
IGMP reports would leave the machine, and it hands a bus its own frames back (a CAN
controller does not). A workshop box must not spray its bus onto the workshop LAN, and test
machines must not send anywhere but loopback. This class keeps python-can's frame encoding
(``pack_message`` / ``unpack_message``, msgpack) and replaces only the sockets: the group is
joined on 127.0.0.1, sent to through 127.0.0.1 with TTL 0, and a bus drops its own frames.

There is no SocketCAN (vcan) in the kernels we run CI on; this bus is how ``vci sim`` in its
own process and the gateway share one CAN bus. In-process tests may use ``virtual``.

Registered with python-can as interface ``vci_loopback`` (pyproject entry point); the channel
is ``GROUP:PORT`` (default ``239.74.163.2:43113``).
"""

from __future__ import annotations

import select
import socket
import time
from typing import Any

import can
from can.interfaces.udp_multicast.utils import pack_message, unpack_message

LOOPBACK = "127.0.0.1"
DEFAULT_CHANNEL = "239.74.163.2:43113"
_MAX_DATAGRAM = 4096


def parse_channel(channel: str | None) -> tuple[str, int]:
    """``"239.74.163.2:43113"`` -> (group, port); the port defaults to 43113."""
    group, _, port = (channel or DEFAULT_CHANNEL).partition(":")
    try:
        return group, int(port or 43113)
    except ValueError as err:
        raise can.CanInitializationError(
            f"vci_loopback channel must be GROUP:PORT, got {channel!r}"
        ) from err


class LoopbackMulticastBus(can.BusABC):
    """CAN 2.0 frames between processes of this machine (see the module docstring)."""

    def __init__(self, channel: str = DEFAULT_CHANNEL, **kwargs: Any) -> None:
        self._group, self._port = parse_channel(channel)
        self._rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            # An ISO-TP burst with STmin 0 must not overflow a reader that is briefly busy.
            try:  # above net.core.rmem_max where we may (root); else as large as allowed
                self._rx.setsockopt(
                    socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 4 * 1024 * 1024
                )
            except (OSError, AttributeError):
                self._rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            self._rx.bind((self._group, self._port))  # only this group's datagrams
            membership = socket.inet_aton(self._group) + socket.inet_aton(LOOPBACK)
            self._rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            self._tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
            self._tx.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LOOPBACK)
            )
            self._tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            self._tx.bind((LOOPBACK, 0))
            self._own_address = self._tx.getsockname()
        except OSError as err:
            self._rx.close()
            self._tx.close()
            raise can.CanInitializationError(
                f"cannot join CAN multicast group {self._group}:{self._port} on loopback: {err}"
            ) from err
        self.channel_info = f"vci_loopback {self._group}:{self._port}"
        super().__init__(channel=channel, **kwargs)

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                ready, _, _ = select.select([self._rx], [], [], remaining)
            except (OSError, ValueError) as err:
                raise can.CanOperationError(f"vci_loopback receive failed: {err}") from err
            if not ready:
                return None, False
            try:
                data, sender = self._rx.recvfrom(_MAX_DATAGRAM)
            except OSError as err:
                raise can.CanOperationError(f"vci_loopback receive failed: {err}") from err
            if sender == self._own_address:
                continue  # a CAN controller does not receive its own frames
            try:
                msg = unpack_message(data, replace={"timestamp": time.time()}, check=True)
            except Exception:  # noqa: BLE001 - anything on the group that is not a frame
                continue
            msg.channel = self.channel_info
            return msg, False

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        try:
            self._tx.sendto(pack_message(msg), (self._group, self._port))
        except OSError as err:
            raise can.CanOperationError(f"vci_loopback send failed: {err}") from err

    def fileno(self) -> int:
        return self._rx.fileno()

    def shutdown(self) -> None:
        super().shutdown()
        self._rx.close()
        self._tx.close()
