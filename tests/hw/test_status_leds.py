"""The gateway's event bus drives the status LEDs and the ENET activation line: real jobs on a
real Gateway, the pins on gpiozero's mock pin factory, numbers from the pinout."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from firmware_py.cloud.portal_link import PortalLink
from firmware_py.config import CloudConfig
from firmware_py.errors import EcuNotRespondingError
from firmware_py.gateway.jobs import Caller, JobRequest
from firmware_py.gateway.service import Gateway
from firmware_py.gateway.store import Store
from firmware_py.hw.box import BoxHardware
from tests.hw.conftest import rising_edges, until

CLI = Caller("cli", "test")


class Car:
    def close(self) -> None:
        pass


def _gateway(tmp_path: Any, hardware: BoxHardware, release: threading.Event) -> Gateway:
    def wait(vehicle: Any, ctx: Any) -> dict[str, Any]:
        assert release.wait(10), "the test did not release the job"
        return {"ecus": []}

    def fail(vehicle: Any, ctx: Any) -> dict[str, Any]:
        raise EcuNotRespondingError("the DME did not answer")

    return Gateway(
        Store(tmp_path),
        open_vehicle=Car,
        handlers={"identify": wait, "programming": wait, "read_faults": fail},
        hardware=hardware,
    )


def test_the_event_bus_drives_the_leds_and_the_activation_line(tmp_path, factory, pinout) -> None:
    hardware = BoxHardware(pinout, enet=True, enet_hold=0.0, pin_factory=factory)
    pin = {name: factory.pin(gpio) for name, gpio in pinout.leds.items()}
    enet = factory.pin(pinout.enet_activation.gpio)
    release = threading.Event()

    async def main() -> None:
        gateway = _gateway(tmp_path, hardware, release)
        await gateway.start()
        try:
            assert pin["power"].state and not pin["job"].state and not enet.state
            assert not pin["vehicle"].state and not pin["portal"].state
            # a job runs: job LED steady, pin 8 switched on (the ENET link needs it)
            job = gateway.runner.submit(JobRequest("identify"), CLI)
            await until(lambda: pin["job"].state and enet.state, "job LED and activation on")
            release.set()
            # identified: the gateway says the vehicle is connected; the job is over
            await until(lambda: pin["vehicle"].state, "vehicle LED on")
            await until(lambda: not pin["job"].state and not enet.state, "job LED, pin 8 off")
            assert job.state == "done"
            # programming: the job LED blinks fast (do not unplug)
            release.clear()
            before = rising_edges(pin["job"])
            gateway.runner.submit(JobRequest("programming", {"package": "a.vcipkg"}), CLI)
            await until(lambda: rising_edges(pin["job"]) >= before + 4, "job LED blinks fast")
            assert enet.state
            release.set()
            await until(lambda: hardware.leds.leds["job"].value == 0 and not enet.state, "off")
            # a failed job: three blinks, then off
            before = rising_edges(pin["job"])
            gateway.runner.submit(JobRequest("read_faults", {}, "DME"), CLI)
            blinker = hardware.leds.leds["job"]
            await until(lambda: rising_edges(pin["job"]) == before + 3, "three blinks")
            # gpiozero's background blink thread ends after n blinks, with the LED off
            await until(lambda: not blinker._blink_thread.is_alive(), "the blinking ends")
            assert rising_edges(pin["job"]) == before + 3 and not pin["job"].state
            # the portal link (what MQTT or the WebSocket set when connected) lights the LED
            link = PortalLink(gateway, "box-1", CloudConfig())
            link.connected.set()
            await until(lambda: pin["portal"].state, "portal LED on")
            link.connected.clear()
            await until(lambda: not pin["portal"].state, "portal LED off")
        finally:
            release.set()
            await gateway.stop()
            hardware.close()

    asyncio.run(main())
    assert not enet.state  # closed: the car's Ethernet is not kept awake


def test_the_activation_line_holds_after_a_job_then_lets_the_car_sleep(
    tmp_path, factory, pinout
) -> None:
    hardware = BoxHardware(pinout, enet=True, enet_hold=0.5, pin_factory=factory)
    enet = factory.pin(pinout.enet_activation.gpio)
    release = threading.Event()
    release.set()

    async def main() -> None:
        gateway = _gateway(tmp_path, hardware, release)
        await gateway.start()
        try:
            await gateway.runner.run(JobRequest("identify"), CLI)
            await until(lambda: hardware.indicators._enet_until > 0, "the job's end seen")
            assert enet.state  # held for the technician's next job
            await until(lambda: not enet.state, "pin 8 off after the hold", timeout=3.0)
        finally:
            await gateway.stop()
            hardware.close()

    asyncio.run(main())


def test_a_can_box_never_switches_the_activation_line(tmp_path, factory, pinout) -> None:
    hardware = BoxHardware(pinout, enet=False, pin_factory=factory)
    enet = factory.pin(pinout.enet_activation.gpio)
    job_led = factory.pin(pinout.leds["job"])
    release = threading.Event()

    async def main() -> None:
        gateway = _gateway(tmp_path, hardware, release)
        await gateway.start()
        try:
            gateway.runner.submit(JobRequest("identify"), CLI)
            await until(lambda: job_led.state, "job LED on")
            assert not enet.state
            release.set()
        finally:
            release.set()
            await gateway.stop()
            hardware.close()

    asyncio.run(main())
    assert not any(s.state for s in enet.states)
