"""On a PC without GPIO the gateway runs without the box's hardware: no error, one log line; on
a box (here gpiozero's mock pins) it opens the LEDs, activation line and ADC of the pinout."""

from __future__ import annotations

import logging

import pytest
from gpiozero import Device

from firmware_py.config import HardwareConfig
from firmware_py.errors import HardwareError
from firmware_py.hw.box import open_hardware
from tests.hw.conftest import set_battery


def test_hardware_not_configured_is_a_log_line(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="firmware_py.hw.box"):
        assert open_hardware(HardwareConfig(), enet=True) is None
    assert "no box hardware configured" in caplog.text


def test_a_pc_without_gpio_runs_without_and_says_so(caplog, monkeypatch) -> None:
    monkeypatch.setattr(Device, "pin_factory", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")  # as on a PC: none loads
    with caplog.at_level(logging.WARNING, logger="firmware_py.hw.box"):
        assert open_hardware(HardwareConfig(gpio=True), enet=True) is None
    assert "box hardware not available" in caplog.text


def test_a_wrong_pinout_file_is_an_error_that_names_it(tmp_path) -> None:
    with pytest.raises(HardwareError, match="cannot be read"):
        open_hardware(HardwareConfig(gpio=True, pinout=str(tmp_path / "none.toml")), enet=True)


def test_on_the_box_the_pinout_s_pins_are_opened(factory, pinout) -> None:
    hardware = open_hardware(HardwareConfig(gpio=True, enet_hold=0), enet=True, pin_factory=factory)
    assert hardware is not None and hardware.voltmeter is not None
    try:
        assert factory.pin(pinout.leds["power"]).state  # the gateway runs
        set_battery(factory, pinout, 12.6)
        assert hardware.voltmeter.read() == pytest.approx(12.6, abs=0.01)
    finally:
        hardware.close()
