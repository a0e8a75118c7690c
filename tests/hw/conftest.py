"""The box's hardware on gpiozero's mock pin factory: mock pins for the LEDs, the button and the
activation line, and a mock MCP3208 on the mock SPI bus (bit by bit, as the chip answers), so
that gpiozero's own MCP3208 class reads it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockSPIDevice

from firmware_py.hw.pinout import Pinout, load_pinout


class MockMCP3208(MockSPIDevice):
    """The MCP3208's side of a conversion (datasheet figure 6-1): after the start bit, the
    single/differential bit and three channel bits, it sends a null bit and 12 result bits,
    most significant first. ``volts[channel]`` is what each input sees."""

    def __init__(self, *pins: int, vref: float, pin_factory: MockFactory) -> None:
        super().__init__(*pins, pin_factory=pin_factory)
        self.vref = vref
        self.volts = [0.0] * 8

    def on_start(self) -> None:
        super().on_start()

    def on_bit(self) -> None:
        # gpiozero sends 5 zero bits, then start, SGL/DIFF, D2 D1 D0: 10 bits before the answer
        if self.rx_bit == 10:
            bits = self.rx_buf[-5:]
            assert bits[0] == 1 and bits[1] == 1, "a single-ended conversion was asked for"
            channel = bits[2] << 2 | bits[3] << 1 | bits[4]
            raw = round(min(max(self.volts[channel], 0.0), self.vref) / self.vref * 4095)
            self.tx_word(raw, 14)  # a don't-care and the null bit, then 12 result bits


@pytest.fixture
def pinout() -> Pinout:
    return load_pinout()


@pytest.fixture
def factory(pinout: Pinout, monkeypatch: pytest.MonkeyPatch) -> Iterator[MockFactory]:
    """gpiozero's mock pins, with the MCP3208 where the pinout puts it (SPI0 CE1 in software
    SPI: SCLK 11, MOSI 10, MISO 9, CE1 7)."""
    f = MockFactory()
    # gpiozero's software SPI bus asks for the default factory whatever the device was given
    # (SPISoftwareBus -> Device.ensure_pin_factory), so the mock factory is also the default
    monkeypatch.setattr(Device, "pin_factory", f)
    select = {0: 8, 1: 7}[pinout.adc.spi_device]
    f.adc = MockMCP3208(11, 10, 9, select, vref=pinout.adc.vref, pin_factory=f)  # type: ignore[attr-defined]
    yield f
    f.adc.close()  # type: ignore[attr-defined]
    f.reset()


def set_battery(factory: MockFactory, pinout: Pinout, volts: float) -> None:
    """Put ``volts`` on OBD pin 16: the ADC input sees it through the pinout's divider."""
    factory.adc.volts[pinout.adc.channel] = volts / pinout.adc.divider_ratio  # type: ignore[attr-defined]


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait (bounded) until ``condition()`` holds; the event loop runs meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)


def rising_edges(pin: Any) -> int:
    """How often a mock pin went from low to high (its recorded history)."""
    states = [s.state for s in pin.states]
    return sum(1 for a, b in zip(states, states[1:], strict=False) if not a and b)
