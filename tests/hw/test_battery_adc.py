"""The box measures the battery on OBD pin 16 through the divider and gpiozero's MCP3208, on the
mock SPI bus."""

from __future__ import annotations

import pytest

from firmware_py.hw.battery import BoxVoltmeter
from firmware_py.hw.pinout import Pinout
from tests.hw.conftest import set_battery


@pytest.mark.parametrize("volts", [6.0, 11.9, 12.6, 13.0, 14.4, 35.0])
def test_the_box_reads_the_battery_through_the_divider(factory, pinout: Pinout, volts) -> None:
    meter = BoxVoltmeter(pinout.adc, pin_factory=factory)
    try:
        set_battery(factory, pinout, volts)
        count = pinout.adc.full_scale_volts / 4096  # one ADC count in battery volts
        assert meter.read() == pytest.approx(volts, abs=count)
    finally:
        meter.close()


def test_the_box_reads_its_channel_not_another(factory, pinout: Pinout) -> None:
    meter = BoxVoltmeter(pinout.adc, pin_factory=factory)
    try:
        factory.adc.volts[(pinout.adc.channel + 1) % 8] = 3.0
        set_battery(factory, pinout, 12.6)
        assert meter.read() == pytest.approx(12.6, abs=0.01)
    finally:
        meter.close()
