"""An independent OBD-II peer: Scapy's ``scapy.contrib.automotive.obd`` layers read mode 01 PID 01
and mode 09 VIN from the simulator's engine ECU over ISO-TP on the same CAN bus (Scapy's own
ISO-TP implementation, on python-can's bus through Scapy's PythonCANSocket), and what they
decode must agree with ``vci emissions``."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Box, SimHandle, vci

obd = pytest.importorskip("scapy.contrib.automotive.obd.obd")
pytest.importorskip("scapy.contrib.isotp")


def scapy_ask(sim: SimHandle, request: object, tx_id: int) -> object:
    from scapy.contrib.cansocket_python_can import PythonCANSocket
    from scapy.contrib.isotp import ISOTPSocket

    can_socket = PythonCANSocket(interface=sim.can_interface, channel=sim.can_channel)
    try:
        # tx 0x7DF: functional (a single frame); tx 0x7E0: physical, so that Scapy's flow
        # control for a multi-frame answer (the VIN) goes where the ECU listens for it
        with ISOTPSocket(can_socket, tx_id=tx_id, rx_id=0x7E8, basecls=obd.OBD) as sock:
            answer = sock.sr1(request, timeout=3, verbose=False)
    finally:
        can_socket.close()
    assert answer is not None, f"no answer from the simulator to {request!r}"
    return answer


def test_scapy_agrees_with_vci_emissions(sim_process: SimHandle, basic_box: Box) -> None:
    sim_process.obd("clear")  # some monitors incomplete: every bit counts
    pid01 = scapy_ask(sim_process, obd.OBD() / obd.OBD_S01(pid=[0x01]), 0x7DF)
    vin = scapy_ask(sim_process, obd.OBD() / obd.OBD_S09(iid=[0x02]), 0x7E0)

    proc = vci("emissions", "--json", *sim_process.cli_args("can"))
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout)["data"]["ecus"][0]

    record = pid01.data_records[0]
    assert record.pid == 0x01
    status = record[obd.OBD_PID01]
    assert status.mil == int(ours["monitor_status"]["mil"])
    assert status.dtc_count == ours["monitor_status"]["dtc_count"]
    monitors = ours["monitor_status"]["monitors"]
    continuous = [m for m in monitors if m["continuous"]]
    # Scapy names the continuous monitors as J1979 does (bit 0 misfire); its "ready" field is
    # J1979's "incomplete" bits (B4-B6)
    names = ["misfire", "fuel_system", "components"]
    assert [m["name"] for m in continuous] == names
    for bit, m in enumerate(continuous):
        assert bool(int(status.continuous_tests_supported) & (1 << bit)) == m["supported"]
        assert bool(int(status.continuous_tests_ready) & (1 << bit)) == (not m["complete"])
    # Bytes C/D: compared by bit position. Scapy 2.x lists its names for these bits in the
    # reverse of J1979's order (it calls bit 0 "egr"; J1979's bit 0 is the catalyst monitor), so
    # its names are not the independent check here, its bits are; ours name them by J1979.
    spark = ["catalyst", "heated_catalyst", "evaporative_system", "secondary_air",
             "ac_refrigerant", "oxygen_sensor", "oxygen_sensor_heater", "egr_vvt"]  # fmt: skip
    by_name = {m["name"]: m for m in monitors if not m["continuous"]}
    supported, incomplete = (
        int(status.once_per_trip_tests_supported),
        int(status.once_per_trip_tests_ready),
    )
    assert incomplete, "the clear left monitors incomplete: the check compares something"
    for bit, name in enumerate(spark):
        assert bool(supported & (1 << bit)) == by_name[name]["supported"], name
        if by_name[name]["supported"]:
            assert bool(incomplete & (1 << bit)) == (not by_name[name]["complete"]), name

    vin_record = vin.data_records[0]
    assert vin_record.iid == 0x02
    assert vin_record.vehicle_identification_numbers[0].decode() == ours["vin"]
