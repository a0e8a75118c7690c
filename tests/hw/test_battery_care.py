"""Battery care: a box left in a parked car shuts itself down when its own measurement stays low
with no job, never during a job. A real Gateway and event bus, the ADC on gpiozero's mock SPI,
a harmless shutdown command (``touch``); the time is passed in, nothing sleeps."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from firmware_py.gateway.battery import BatteryCare
from firmware_py.gateway.jobs import Caller, JobRequest
from firmware_py.gateway.service import Gateway
from firmware_py.gateway.store import Store
from firmware_py.hw.box import BoxHardware
from tests.hw.conftest import set_battery, until

CLI = Caller("cli", "test")
AFTER = 1800.0


class Car:
    """Only where no hardware can exist: a PC's vehicle that reports its voltage."""

    def __init__(self, volts: float) -> None:
        self.volts = volts

    def supply_voltage(self) -> float:
        return self.volts

    def close(self) -> None:
        pass


def _gateway(tmp_path, hardware, release=None, car_volts=12.6) -> Gateway:
    def wait(vehicle: Any, ctx: Any) -> dict[str, Any]:
        assert release is not None and release.wait(10)
        return {}

    return Gateway(
        Store(tmp_path / "state"),
        open_vehicle=lambda: Car(car_volts),
        handlers={"read_faults": wait},
        hardware=hardware,
        battery_care=BatteryCare(12.2, AFTER),
        shutdown_command=f"touch {tmp_path / 'shut-down'}",
    )


def _kinds(sub) -> list[str]:
    kinds = []
    while (event := sub.get_nowait()) is not None:
        kinds.append(event.kind)
    return kinds


def test_low_battery_with_no_job_shuts_the_box_down(tmp_path, factory, pinout) -> None:
    hardware = BoxHardware(pinout, enet=True, pin_factory=factory)
    marker = tmp_path / "shut-down"

    async def main() -> None:
        gateway = _gateway(tmp_path, hardware)
        await gateway.start()
        sub = gateway.bus.subscribe()
        try:
            set_battery(factory, pinout, 11.8)
            await gateway.check_battery(now=100.0)
            assert gateway.vehicle_state()["battery_source"] == "box"
            assert gateway.vehicle_state()["battery_voltage"] == 11.8
            assert _kinds(sub) == ["vehicle.state", "battery.low"]
            await until(lambda: hardware.leds.shown["power"].name == "SLOW", "power LED slow")
            await gateway.check_battery(now=100.0 + AFTER - 1)
            assert "power.shutdown" not in _kinds(sub) and not marker.exists()
            await gateway.check_battery(now=100.0 + AFTER)
            assert _kinds(sub) == ["power.shutdown"]
            assert marker.exists()  # the shutdown command ran
            await until(lambda: hardware.leds.shown["power"].name == "FAST", "power LED fast")
        finally:
            sub.close()
            await gateway.stop()
            hardware.close()

    asyncio.run(main())


def test_never_during_a_job_and_the_countdown_starts_again_after_it(
    tmp_path, factory, pinout
) -> None:
    hardware = BoxHardware(pinout, enet=True, pin_factory=factory)
    marker = tmp_path / "shut-down"
    release = threading.Event()

    async def main() -> None:
        gateway = _gateway(tmp_path, hardware, release)
        await gateway.start()
        try:
            set_battery(factory, pinout, 11.5)
            await gateway.check_battery(now=0.0)
            job = gateway.runner.submit(JobRequest("read_faults", {}, "DME"), CLI)
            await until(lambda: job.state == "running", "the job runs")
            await gateway.check_battery(now=AFTER + 10)  # long past the countdown: a job runs
            assert not marker.exists()
            release.set()
            await until(lambda: job.state == "done", "the job is done")
            await gateway.check_battery(now=AFTER + 20)  # the countdown began again at +10
            assert not marker.exists()
            await gateway.check_battery(now=2 * AFTER + 10)
            assert marker.exists()
        finally:
            release.set()
            await gateway.stop()
            hardware.close()

    asyncio.run(main())


def test_a_recovered_battery_cancels_the_countdown(tmp_path, factory, pinout) -> None:
    hardware = BoxHardware(pinout, enet=True, pin_factory=factory)
    marker = tmp_path / "shut-down"

    async def main() -> None:
        gateway = _gateway(tmp_path, hardware)
        await gateway.start()
        sub = gateway.bus.subscribe()
        try:
            set_battery(factory, pinout, 11.9)
            await gateway.check_battery(now=0.0)
            set_battery(factory, pinout, 14.2)  # the engine started
            await gateway.check_battery(now=60.0)
            assert _kinds(sub) == ["vehicle.state", "battery.low", "vehicle.state", "battery.ok"]
            await until(lambda: hardware.leds.shown["power"].name == "ON", "power LED steady")
            await gateway.check_battery(now=AFTER + 60)
            assert not marker.exists()
        finally:
            sub.close()
            await gateway.stop()
            hardware.close()

    asyncio.run(main())


def test_without_the_box_s_adc_the_vehicle_s_voltage_is_shown_and_never_shuts_down(
    tmp_path,
) -> None:
    marker = tmp_path / "shut-down"

    async def main() -> None:
        gateway = _gateway(tmp_path, None, car_volts=11.0)  # a PC: no GPIO, no ADC
        await gateway.start()
        try:
            gateway.vehicle["connected"] = True
            await gateway.check_battery(now=0.0)
            await gateway.check_battery(now=10 * AFTER)
            state = gateway.vehicle_state()
            assert (state["battery_voltage"], state["battery_source"]) == (11.0, "vehicle")
            assert not marker.exists()
        finally:
            await gateway.stop()

    asyncio.run(main())
