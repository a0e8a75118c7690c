"""A car is reached at the address that answered identification, not at the address the
identification was sent to: on the box that is the ENET link's broadcast address, which no TCP
connection can go to. A relay on 127.0.0.1 stands for the broadcast here: it hands the request to
the simulator on 127.0.0.2 and the answer comes back from there, as a car's answer comes from
the car's own address."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from firmware_py.config import TransportConfig
from firmware_py.transport import open_link

VIN = b"WBAJA71090B123456"


class Relay:
    """UDP on 127.0.0.1:``port`` (0: a free one); each datagram goes to ``car`` and the car's
    answer goes back to the sender from a socket on the car's address."""

    def __init__(self, port: int, car: tuple[str, int]) -> None:
        self.inbound = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.inbound.bind(("127.0.0.1", port))
        self.port = self.inbound.getsockname()[1]
        self.car = car
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while True:
            try:
                request, tester = self.inbound.recvfrom(4096)
            except OSError:
                return
            if self.stopping:
                return
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                out.bind((self.car[0], 0))
                out.settimeout(2)
                out.sendto(request, self.car)
                try:
                    out.sendto(out.recv(4096), tester)
                except OSError:
                    continue

    def close(self) -> None:
        self.stopping = True  # and wake the thread from its recvfrom
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as wake:
            wake.sendto(b"", ("127.0.0.1", self.port))
        self.thread.join(timeout=5)
        self.inbound.close()


@pytest.fixture
def car(start_sim):  # type: ignore[no-untyped-def]
    return start_sim("--host", "127.0.0.2")


@pytest.fixture
def relays(car) -> Iterator[TransportConfig]:  # type: ignore[no-untyped-def]
    doip = Relay(car.doip_port, ("127.0.0.2", car.doip_port))  # the same port as the car's TCP
    hsfz = Relay(0, ("127.0.0.2", car.hsfz_control_port))
    yield TransportConfig(
        doip_host="127.0.0.1",
        doip_port=car.doip_port,
        hsfz_port=car.hsfz_port,
        hsfz_control_port=hsfz.port,
    )
    doip.close()
    hsfz.close()


@pytest.mark.parametrize("kind", ["doip", "hsfz", "enet"])
def test_the_link_goes_to_the_address_that_answered_identification(
    relays: TransportConfig, kind: str
) -> None:
    link = open_link(relays, kind)
    try:
        assert "127.0.0.2" in link.description
        ecu = link.ecu_connection(0x12).open()
        ecu.send(bytes.fromhex("22F190"))
        assert ecu.wait_frame(timeout=5, exception=True) == bytes.fromhex("62F190") + VIN
    finally:
        link.close()


@pytest.mark.parametrize("protocol", ["doip", "hsfz"])
def test_identification_to_an_address_without_the_protocol_ends_at_once(protocol) -> None:
    """A unicast identification to a host where nothing listens on the port (an HSFZ gateway
    without the UDP identification, a car without DoIP) gets ICMP "port unreachable": that is
    the answer, not the end of the timeout (each HSFZ connection used to wait 2 s for it)."""
    import time

    from firmware_py.transport.doip_link import discover_doip
    from firmware_py.transport.hsfz_link import discover_hsfz

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # free, and nothing listens once this is closed
    started = time.monotonic()
    if protocol == "doip":
        found: list[object] = list(discover_doip("127.0.0.1", closed, 5.0))
    else:
        found = list(discover_hsfz("127.0.0.1", closed, timeout=5.0))
    took = time.monotonic() - started
    assert found == []
    assert took < 2.5, f"{protocol} identification waited {took:.1f} s for a closed port"


def test_identification_may_broadcast_to_any_subnet_broadcast_address() -> None:
    """A /25's broadcast address (x.x.x.127) is a broadcast too: the socket may send to it."""
    from firmware_py.transport.udp import identification_socket

    for host in ("192.168.1.255", "192.168.1.127", "169.254.255.255"):
        with identification_socket(host) as sock:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) == 1, host
