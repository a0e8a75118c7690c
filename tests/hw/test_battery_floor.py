"""The battery floor of programming goes by the box's own measurement when the box has the ADC,
by the vehicle's reported voltage otherwise, and says which. A raw programming-class request
(RequestDownload) to ``vci sim`` over DoIP; the box's ADC on gpiozero's mock SPI."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from firmware_py.config import TransportConfig
from firmware_py.gateway.job_handlers import HANDLERS
from firmware_py.gateway.jobs import Caller, JobRequest
from firmware_py.gateway.service import Gateway
from firmware_py.gateway.store import Store
from firmware_py.hw.box import BoxHardware
from firmware_py.keys import load_public_keys
from firmware_py.uds.vehicle import VehicleSession
from tests.flash.conftest import image, publisher  # noqa: F401 - the fixture
from tests.hw.conftest import set_battery

CLI = Caller("cli", "test")
DOWNLOAD = JobRequest("raw_uds", {"request": "34 00 44 00 01 00 00 00 00 10 00"}, "DME")


def _gateway(tmp_path, port: int, hardware) -> Gateway:
    transport = TransportConfig(doip_host="127.0.0.1", doip_port=port)
    return Gateway(
        Store(tmp_path / "state"),
        open_vehicle=lambda: VehicleSession.open(transport, "doip"),
        handlers=HANDLERS,
        hardware=hardware,
    )


def test_the_floor_goes_by_the_box_s_own_measurement(tmp_path, start_sim, factory, pinout):
    car = start_sim("--battery", "13.6")  # the car reports a healthy battery
    hardware = BoxHardware(pinout, enet=True, pin_factory=factory)

    async def main() -> None:
        gateway = _gateway(tmp_path, car.doip_port, hardware)
        await gateway.start()
        try:
            set_battery(factory, pinout, 12.0)  # ... but the box measures 12.0 V on pin 16
            refused = await gateway.runner.run(DOWNLOAD, CLI)
            assert refused.state == "failed"
            message = refused.error["message"]
            assert "battery voltage 12.0 V is below 13.0 V" in message
            assert "(measured by the box on OBD pin 16). Nothing was sent" in message
            car.set_battery(12.0)  # the car's own report is low, the box measures 13.8 V
            set_battery(factory, pinout, 13.8)
            sent = await gateway.runner.run(DOWNLOAD, CLI)
            assert "below" not in str(sent.error or {}), sent.error
            assert sent.result is not None and "response" in sent.result
        finally:
            await gateway.stop()
            hardware.close()

    asyncio.run(main())


def test_without_the_adc_the_floor_goes_by_the_vehicle_and_says_so(tmp_path, start_sim) -> None:
    car = start_sim("--battery", "12.0")

    async def main() -> None:
        gateway = _gateway(tmp_path, car.doip_port, None)
        await gateway.start()
        try:
            refused = await gateway.runner.run(DOWNLOAD, CLI)
            assert refused.state == "failed"
            message = refused.error["message"]
            assert "battery voltage 12.0 V is below 13.0 V" in message
            assert "(reported by the vehicle)" in message
        finally:
            await gateway.stop()

    asyncio.run(main())


def test_programming_refuses_on_the_box_s_measurement_and_its_step_says_so(
    tmp_path,
    start_sim,
    factory,
    pinout,
    publisher,  # noqa: F811 - the fixture
) -> None:
    car = start_sim("--battery", "13.6")  # the car reports a healthy battery
    hardware = BoxHardware(pinout, enet=True, pin_factory=factory)
    pkg = publisher.package("egs.vcipkg", "EGS", 0x18, "12.05.00", image("12.05.00", 8192))

    async def main() -> tuple[Any, list[dict[str, Any]]]:
        gateway = _gateway(tmp_path, car.doip_port, hardware)
        gateway.runner.services["publisher_keys"] = load_public_keys(publisher.trust)
        await gateway.start()
        sub = gateway.bus.subscribe()
        try:
            set_battery(factory, pinout, 12.0)  # ... the box measures 12.0 V on pin 16
            job = await gateway.runner.run(
                JobRequest("programming", {"package": str(pkg)}, "EGS"), CLI
            )
            steps = []
            while (event := sub.get_nowait()) is not None:
                if event.kind == "job.step":
                    steps.append(event.data)
            return job, steps
        finally:
            sub.close()
            await gateway.stop()
            hardware.close()

    job, steps = asyncio.run(main())
    assert job.state == "failed", (steps, job.result)
    assert "battery voltage 12.0 V is below 13.0 V. Nothing was erased" in job.error["message"]
    told = [s for s in steps if s["step"] == "battery voltage"]
    assert len(told) == 1 and told[0]["battery_source"] == "box"
    assert told[0]["volts"] == pytest.approx(12.0, abs=0.02)  # one ADC count is 8.9 mV
