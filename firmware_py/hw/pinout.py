"""The box's pinout (hardware/pinout.toml, shipped as ``firmware_py/hw/pinout.toml``): loaded with
tomllib into frozen dataclasses and validated, so that a wrong number is a clear
:class:`~firmware_py.errors.HardwareError` at start-up, not a dark LED on the bench.

The LEDs, the button, the activation line and the ADC take their numbers from here, and
``scripts/render-hardware`` renders the same data into the hardware README and wiring diagram.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware_py.errors import HardwareError

DEFAULT_PINOUT = Path(__file__).with_name("pinout.toml")
LED_NAMES = ("power", "vehicle", "portal", "job")
#: OBD-II (SAE J1962) pins the box must describe: CAN, ENET, activation, battery, grounds.
REQUIRED_OBD_PINS = frozenset({3, 4, 5, 6, 8, 11, 12, 13, 14, 16})
_HINT = "Correct the pinout file (hardware/pinout.toml) and start again"


@dataclass(frozen=True)
class EnetActivation:
    gpio: int
    """GPIO that switches +12 V onto the activation pin (through the transistor)"""
    obd_pin: int
    series_ohms: float
    """resistor between the switched +12 V and the OBD activation pin"""
    base_ohms: float
    gate_pullup_ohms: float


@dataclass(frozen=True)
class Adc:
    chip: str
    spi_port: int
    spi_device: int
    channel: int
    vref: float
    """the ADC's reference voltage: its full-scale input"""
    r_top_ohms: float
    """divider resistor from OBD pin 16 to the ADC input"""
    r_bottom_ohms: float
    """divider resistor from the ADC input to ground"""
    filter_nf: float
    obd_pin: int

    @property
    def divider_ratio(self) -> float:
        """Vehicle volts per ADC-input volt."""
        return (self.r_top_ohms + self.r_bottom_ohms) / self.r_bottom_ohms

    @property
    def full_scale_volts(self) -> float:
        """The highest vehicle voltage the box can measure."""
        return self.vref * self.divider_ratio


@dataclass(frozen=True)
class ObdPin:
    pin: int
    signal: str
    box: str


@dataclass(frozen=True)
class Pinout:
    pairing_button: int
    leds: dict[str, int]
    led_series_ohms: float
    enet_activation: EnetActivation
    adc: Adc
    reserved: dict[int, str]
    obd: tuple[ObdPin, ...]

    def gpios(self) -> dict[int, str]:
        """Every GPIO this box drives or reads, with what it is."""
        used = {self.pairing_button: "pairing button", self.enet_activation.gpio: "ENET activation"}
        used.update({gpio: f"{name} LED" for name, gpio in self.leds.items()})
        return used


def _table(data: dict[str, Any], name: str, where: Path) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise HardwareError(f"{where}: the table [{name}] is missing", hint=_HINT)
    return value


def _number(table: dict[str, Any], key: str, section: str, where: Path, kind: type = int) -> Any:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise HardwareError(
            f"{where}: [{section}] {key} must be a {'number' if kind is float else 'whole number'}"
            f", not {value!r}",
            hint=_HINT,
        )
    return kind(value)


def _gpio(table: dict[str, Any], key: str, section: str, where: Path) -> int:
    gpio = int(_number(table, key, section, where))
    if not 2 <= gpio <= 27:
        raise HardwareError(
            f"{where}: [{section}] {key} = {gpio} is not a GPIO of the Pi's header (2 to 27)",
            hint=_HINT,
        )
    return gpio


def _positive(table: dict[str, Any], key: str, section: str, where: Path) -> float:
    value = float(_number(table, key, section, where, float))
    if value <= 0:
        raise HardwareError(f"{where}: [{section}] {key} must be above 0", hint=_HINT)
    return value


def parse_pinout(data: dict[str, Any], where: Path = DEFAULT_PINOUT) -> Pinout:
    """Validate the parsed TOML ``data`` (``where`` names the file in messages)."""
    button = _table(data, "button", where)
    leds = _table(data, "leds", where)
    act = _table(data, "enet_activation", where)
    adc_t = _table(data, "adc", where)
    reserved_t = data.get("reserved", {})
    pinout = Pinout(
        pairing_button=_gpio(button, "pairing", "button", where),
        leds={name: _gpio(leds, name, "leds", where) for name in LED_NAMES},
        led_series_ohms=_positive(leds, "led_series_ohms", "leds", where),
        enet_activation=EnetActivation(
            gpio=_gpio(act, "gpio", "enet_activation", where),
            obd_pin=int(_number(act, "obd_pin", "enet_activation", where)),
            series_ohms=_positive(act, "series_ohms", "enet_activation", where),
            base_ohms=_positive(act, "base_ohms", "enet_activation", where),
            gate_pullup_ohms=_positive(act, "gate_pullup_ohms", "enet_activation", where),
        ),
        adc=Adc(
            chip=str(adc_t.get("chip", "")),
            spi_port=int(_number(adc_t, "spi_port", "adc", where)),
            spi_device=int(_number(adc_t, "spi_device", "adc", where)),
            channel=int(_number(adc_t, "channel", "adc", where)),
            vref=_positive(adc_t, "vref", "adc", where),
            r_top_ohms=_positive(adc_t, "r_top_ohms", "adc", where),
            r_bottom_ohms=_positive(adc_t, "r_bottom_ohms", "adc", where),
            filter_nf=_positive(adc_t, "filter_nf", "adc", where),
            obd_pin=int(_number(adc_t, "obd_pin", "adc", where)),
        ),
        reserved={int(k): str(v) for k, v in reserved_t.items() if str(k).isdigit()},
        obd=tuple(
            ObdPin(
                pin=int(_number(row, "pin", "obd", where)),
                signal=str(row.get("signal", "")),
                box=str(row.get("box", "")),
            )
            for row in data.get("obd", [])
        ),
    )
    _check(pinout, where)
    return pinout


def _check(p: Pinout, where: Path) -> None:
    def fail(message: str) -> HardwareError:
        return HardwareError(f"{where}: {message}", hint=_HINT)

    seen: dict[int, str] = {}
    for gpio, what in [
        (p.pairing_button, "pairing button"),
        (p.enet_activation.gpio, "ENET activation"),
        *((gpio, f"{name} LED") for name, gpio in p.leds.items()),
    ]:
        if gpio in seen:
            raise fail(f"GPIO{gpio} is given to both the {seen[gpio]} and the {what}")
        if gpio in p.reserved:
            raise fail(f"GPIO{gpio} ({what}) is reserved for {p.reserved[gpio]}")
        seen[gpio] = what
    if p.adc.chip != "MCP3208":
        raise fail(f"[adc] chip {p.adc.chip!r}: the firmware drives an MCP3208")
    if not 0 <= p.adc.channel <= 7:
        raise fail(f"[adc] channel {p.adc.channel}: the MCP3208 has channels 0 to 7")
    if p.adc.spi_port != 0 or p.adc.spi_device not in (0, 1):
        raise fail("[adc] the MCP3208 sits on SPI port 0, device 0 or 1")
    pins = [row.pin for row in p.obd]
    for pin in pins:
        if not 1 <= pin <= 16 or pins.count(pin) > 1:
            raise fail(f"[[obd]] pin {pin} is not an OBD-II pin (1 to 16) or is listed twice")
    missing = REQUIRED_OBD_PINS - set(pins)
    if missing:
        raise fail(f"[[obd]] the pin table lacks pins {', '.join(map(str, sorted(missing)))}")
    if p.enet_activation.obd_pin != 8 or p.adc.obd_pin != 16:
        raise fail("the activation line is OBD pin 8 and the battery OBD pin 16 (SAE J1962)")


def load_pinout(path: Path | None = None) -> Pinout:
    """Read and validate the pinout; ``path`` defaults to the one shipped with the firmware."""
    path = path or DEFAULT_PINOUT
    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise HardwareError(
            f"the pinout file {path} cannot be read: {err}", hint="Set [hw] pinout to its path"
        ) from err
    except tomllib.TOMLDecodeError as err:
        raise HardwareError(f"{path} is not valid TOML: {err}", hint=_HINT) from err
    return parse_pinout(data, path)
