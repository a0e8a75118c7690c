"""Run inside the appliance VM (in the tablet's network namespace): ask for NAME's IPv4 address
from the interface whose address is SOURCE, and print it; exit 1 without an answer within the
timeout. SERVER ``mdns``: by mDNS (RFC 6762, a query from port 5353 to the multicast group);
otherwise a plain DNS query to SERVER port 53 (the DNS server the box's DHCP hands out).
Usage: dns_query.py NAME SOURCE SERVER TIMEOUT"""

import socket
import struct
import sys
import time

GROUP, PORT = "224.0.0.251", 5353


def query(name: str, recursion: bool = False) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return (
        struct.pack(">6H", 0x1234 if recursion else 0, 0x0100 if recursion else 0, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack(">2H", 1, 1)
    )


def skip_name(data: bytes, at: int) -> int:
    while True:
        n = data[at]
        if n == 0:
            return at + 1
        if n & 0xC0 == 0xC0:
            return at + 2
        at += 1 + n


def a_records(data: bytes) -> list[str]:
    qd, an, ns, ar = struct.unpack(">4H", data[4:12])
    at = 12
    for _ in range(qd):
        at = skip_name(data, at) + 4
    found = []
    for _ in range(an + ns + ar):
        at = skip_name(data, at)
        rtype, _cls, _ttl, length = struct.unpack(">HHIH", data[at : at + 10])
        at += 10
        if rtype == 1 and length == 4:
            found.append(socket.inet_ntoa(data[at : at + 4]))
        at += length
    return found


def main() -> None:
    name, source, server, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if server != "mdns":
        s.bind((source, 0))
        s.settimeout(timeout)
        s.sendto(query(name, recursion=True), (server, 53))
        found = a_records(s.recvfrom(9000)[0])
        if not found:
            sys.exit(f"{server} has no address for {name}")
        print(found[0])
        return
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", PORT))
    mreq = socket.inet_aton(GROUP) + socket.inet_aton(source)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(source))
    # RFC 6762 section 11: mDNS packets go with IP TTL 255 (systemd-resolved drops others)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.sendto(query(name), (GROUP, PORT))
        s.settimeout(1.0)
        try:
            while True:
                data, _ = s.recvfrom(9000)
                if data[2] & 0x80:  # a response
                    found = a_records(data)
                    if found:
                        print(found[0])
                        return
        except TimeoutError:
            continue
    sys.exit(f"no mDNS answer for {name} within {timeout:.0f} s")


if __name__ == "__main__":
    main()
