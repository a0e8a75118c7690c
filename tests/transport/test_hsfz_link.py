"""The HSFZ link against the simulator's HSFZ face: the UDS layer's per-ECU sessions over one
connection, discovery on UDP, an unknown ECU, a vehicle that resets the connection, a pcap trace
that Scapy reads back as HSFZ, and a peer that sends frames for addresses nobody asked."""

from __future__ import annotations

import socket
import threading

import pytest
from scapy.layers.inet import TCP
from scapy.utils import rdpcap

from firmware_py.errors import ConnectionLostError, UnknownTargetError
from firmware_py.transport import hsfz
from firmware_py.transport.hsfz_link import HsfzLink, discover_hsfz, open_hsfz_link
from firmware_py.uds.vehicle import VehicleSession

scapy_hsfz = pytest.importorskip("scapy.contrib.automotive.bmw.hsfz")
VIN = "WBAJA71090B123456"


def test_discovery_finds_the_gateway(sim_process) -> None:
    found = discover_hsfz(sim_process.hsfz_host, sim_process.hsfz_control_port, timeout=1.0)
    assert [(addr, ident.vin, ident.diag_address) for addr, ident in found] == [
        ("127.0.0.1", VIN, 0x10)
    ]


def test_uds_over_hsfz_to_several_ecus(sim_process, tmp_path) -> None:
    link = open_hsfz_link(
        sim_process.hsfz_host, sim_process.hsfz_port, trace_path=tmp_path / "t.pcap"
    )
    vehicle = VehicleSession(link)
    try:
        assert vehicle.kind == "hsfz"
        assert vehicle.ecu("DME").read_dids(0xF190)[0xF190] == VIN
        assert vehicle.ecu("EGS").read_dids(0xF190)[0xF190] == VIN
        assert vehicle.supply_voltage() > 10
        with pytest.raises(UnknownTargetError):
            link.send(0x77, b"\x3e\x00")
    finally:
        vehicle.close()
        link.close()
    packets = rdpcap(str(tmp_path / "t.pcap"))
    # Scapy dissects HSFZ on port 6801 by itself; the simulator's port here is a free one
    frames = [scapy_hsfz.HSFZ(bytes(p[TCP].payload)) for p in packets if bytes(p[TCP].payload)]
    assert any(f.control == 1 and f.target == 0x12 for f in frames)  # our request to the DME
    assert any(f.control == 2 for f in frames)  # the gateway's acknowledgement


def test_a_reset_connection_is_reported_then_reconnected(start_sim) -> None:
    sim = start_sim()
    link = HsfzLink(sim.hsfz_host, sim.hsfz_port)
    vehicle = VehicleSession(link)
    try:
        sim.inject(doip_reset_after=1)  # the gateway drops the next diagnostic connection
        with pytest.raises(ConnectionLostError):
            vehicle.ecu("DME").read_dids(0xF190)
        assert vehicle.ecu("DME").read_dids(0xF190)[0xF190] == VIN  # connected again
    finally:
        vehicle.close()
        link.close()


def test_frames_for_nobody_are_dropped_not_kept() -> None:
    """A peer that floods answers from addresses the tester never asked is bounded."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def peer() -> None:
        conn, _ = server.accept()
        with conn:
            data = conn.recv(4096)
            request = hsfz.Decoder().feed(data)[0]
            flood = b"".join(
                hsfz.diagnostic_message(
                    0x40 + (i % 100), 0xF4, b"\x62\xf1\x90" + b"x" * 100
                ).encode()
                for i in range(5000)
            )
            conn.sendall(hsfz.acknowledge(request).encode() + flood)
            conn.sendall(hsfz.diagnostic_message(0x12, 0xF4, b"\x7e\x00").encode())
            conn.recv(10)

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    link = HsfzLink("127.0.0.1", server.getsockname()[1])
    try:
        ecu = link.ecu_connection(0x12).open()
        ecu.send(b"\x3e\x00")
        assert ecu.wait_frame(timeout=5) == b"\x7e\x00"
        assert link.dropped == 5000
        assert set(link._answers.queues) == {0x12}
    finally:
        link.close()
        server.close()
        thread.join(timeout=5)
