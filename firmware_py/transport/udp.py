"""The UDP socket that vehicle identification (DoIP and HSFZ) is sent from and answers are
read on."""

from __future__ import annotations

import socket

IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
"""Linux's IP_RECVERR (11; not every Python build's socket module names it)"""


def identification_socket(host: str) -> socket.socket:
    """A UDP socket for identification sent to ``host``, broadcast allowed. Unicast reports an ICMP "port unreachable" from the host as
    ConnectionRefusedError on the next receive: a car (or tool) that does not speak the protocol
    is known at once instead of after the whole answer timeout (every HSFZ connection to a
    gateway without the identification port waited it out: 2 s). An unconnected socket is
    kept (an answer may come from another address, e.g. a relay's car)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # always: a subnet's broadcast address need not end in .255 (192.168.1.127 for a /25)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    if not host.endswith(".255"):
        try:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        except OSError:  # not Linux: the answer timeout still ends the wait
            pass
    return sock
