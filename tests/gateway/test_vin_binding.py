"""A ticket bound to one vehicle works only on that vehicle: the gateway checks the VIN of the car
connected now, read again after every (re)connection and right before each job under such a
ticket - not a VIN remembered from an earlier identify. The "cable moves to another car" here is
a second ``vci sim`` with another VIN at the same address (a car on Auto-IP takes the same one)."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_py.config import TransportConfig
from firmware_py.errors import EntitlementError
from firmware_py.gateway.entitlements import Entitlements
from firmware_py.gateway.job_handlers import HANDLERS, vehicle_vin
from firmware_py.gateway.jobs import Caller, JobRequest, JobState
from firmware_py.gateway.service import Gateway
from firmware_py.gateway.store import Store
from firmware_py.gateway.trusted_time import TrustedClock
from firmware_py.uds.vehicle import VehicleSession
from portal.tickets import issue
from tests.conftest import vci

DEVICE = "box-test-0001"
CAR_A, CAR_B = "WBAJA71090B123456", "WBA5R11000FH99999"
TABLET = Caller("tablet", "test")
CLEAR = JobRequest("clear_fault_memory", ecu="DME")


def make_gateway(tmp_path, port: int) -> Gateway:
    key = Ed25519PrivateKey.generate()  # TEST key, made for this test
    store = Store(tmp_path / "state")
    clock = TrustedClock(store)
    ent = Entitlements(store, {"k1": key.public_key()}, DEVICE, clock)
    ent.add_ticket(issue(key, "k1", tariff="basic-1d", device=DEVICE, vin=CAR_A))
    transport = TransportConfig(doip_host="127.0.0.1", doip_port=port)
    return Gateway(
        store,
        open_vehicle=lambda: VehicleSession.open(transport, "doip"),
        handlers=HANDLERS,
        entitlements=ent,
        clock=clock,
        read_vin=vehicle_vin,
    )


def test_a_vin_bound_ticket_stops_working_when_the_cable_moves_to_another_car(
    tmp_path, start_sim
) -> None:
    car_a = start_sim()
    gateway = make_gateway(tmp_path, car_a.doip_port)
    car_b = None

    async def main() -> tuple[JobState, dict, JobState, str | None]:
        nonlocal car_b
        await gateway.start()
        runner = gateway.runner
        try:
            with pytest.raises(EntitlementError, match="identify the vehicle first"):
                runner.admit(CLEAR, TABLET)  # nothing connected yet: the VIN is unknown
            identified = await runner.run(JobRequest("identify"), TABLET)
            assert identified.state is JobState.DONE and gateway.worker.vin == CAR_A
            assert (await runner.run(CLEAR, TABLET)).state is JobState.DONE
            # the cable moves to another car, which answers at the same address
            car_a.process.terminate()
            car_a.process.wait(timeout=10)
            car_b = start_sim("--doip-port", str(car_a.doip_port), "--vin", CAR_B)
            moved = await runner.run(CLEAR, TABLET)  # admitted on the VIN known before the move
            identify_b = await runner.run(JobRequest("identify"), TABLET)
            return moved.state, moved.error or {}, identify_b.state, gateway.worker.vin
        finally:
            await gateway.stop()

    moved_state, moved_error, identify_b, vin_now = asyncio.run(main())
    assert car_b is not None
    assert moved_state is JobState.FAILED and moved_error["error"] == "not_entitled", moved_error
    assert CAR_A in moved_error["message"] and CAR_B in moved_error["message"]
    assert car_b.state()["ecus"]["DME"]["dtcs"]  # car B's fault memory was not cleared
    assert identify_b is JobState.DONE and vin_now == CAR_B
    assert gateway.worker.vin is None  # the link closed: no car known


def test_a_vin_bound_ticket_is_refused_once_the_other_car_is_known(tmp_path, start_sim) -> None:
    car_b = start_sim("--vin", CAR_B)
    gateway = make_gateway(tmp_path, car_b.doip_port)

    async def main() -> None:
        await gateway.start()
        try:
            await gateway.runner.run(JobRequest("read_vin"), TABLET)
            assert gateway.vehicle_state()["vin"] == CAR_B
            with pytest.raises(EntitlementError, match=f"is for vehicle {CAR_A}, this is {CAR_B}"):
                gateway.runner.admit(CLEAR, TABLET)
        finally:
            await gateway.stop()

    asyncio.run(main())
    assert car_b.state()["ecus"]["DME"]["dtcs"]


def test_vci_sim_takes_another_vin() -> None:
    bad = vci("sim", "--vin", "SHORT", "--doip-port", "0", timeout=30)
    assert bad.returncode == 2 and "17" in bad.stderr and "Traceback" not in bad.stderr
