"""The vehicle's battery voltage measured by the box itself: OBD pin 16 through a divider into
an MCP3208 ADC on SPI, read with gpiozero. The divider's values come from the pinout."""

from __future__ import annotations

import threading
from typing import Any

from firmware_py.errors import HardwareError
from firmware_py.hw.pinout import Adc


class BoxVoltmeter:
    """Volts on OBD pin 16 (``read()``, a few milliseconds over SPI)."""

    source = "box"

    def __init__(self, adc: Adc, *, pin_factory: Any = None) -> None:
        from gpiozero import MCP3208  # a PC without GPIO never needs it

        self.adc = adc
        # the gateway's battery watch and a job's battery floor read from different threads: one
        # SPI conversion at a time (two interleaved transfers read garbage)
        self._lock = threading.Lock()
        try:
            self.chip = MCP3208(
                channel=adc.channel,
                port=adc.spi_port,
                device=adc.spi_device,
                max_voltage=adc.vref,
                pin_factory=pin_factory,
            )
        except Exception as err:  # gpiozero raises its own tree (GPIOZeroError) and OSError
            raise HardwareError(
                f"the battery ADC ({adc.chip} on SPI{adc.spi_port}.{adc.spi_device}) cannot be "
                f"opened: {err}",
                hint="Enable SPI (dtparam=spi=on in config.txt) and check the ADC's wiring",
            ) from err

    def read(self) -> float:
        """The battery voltage in volts."""
        try:
            with self._lock:
                return float(self.chip.voltage) * self.adc.divider_ratio
        except Exception as err:  # gpiozero's SPI errors
            raise HardwareError(
                f"the battery ADC could not be read: {err}", hint="Check the ADC's wiring"
            ) from err

    def close(self) -> None:
        self.chip.close()
