"""The pinout file is the one description: the README's tables and the wiring diagram are rendered
from it (and a test notices when they are stale), and a wrong number is a clear error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_py.errors import HardwareError
from firmware_py.hw.pinout import DEFAULT_PINOUT, load_pinout

ROOT = Path(__file__).resolve().parents[2]
RENDER = ROOT / "scripts" / "render-hardware"


def _render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RENDER), *args], capture_output=True, text=True, timeout=60
    )


def test_the_firmware_ships_the_pinout_of_hardware_dir() -> None:
    assert DEFAULT_PINOUT.read_text() == (ROOT / "hardware" / "pinout.toml").read_text()


def test_readme_and_wiring_diagram_agree_with_the_pinout() -> None:
    got = _render("--check")
    assert got.returncode == 0, got.stderr


def test_a_changed_pinout_makes_readme_and_diagram_stale(tmp_path: Path) -> None:
    hw = tmp_path / "hardware"
    shutil.copytree(ROOT / "hardware", hw)
    text = (hw / "pinout.toml").read_text().replace("job = 19", "job = 26")
    (hw / "pinout.toml").write_text(text)
    got = _render("--check", "--dir", str(hw))
    assert got.returncode == 1
    assert "README.md disagrees" in got.stderr and "wiring.svg disagrees" in got.stderr
    assert _render("--dir", str(hw)).returncode == 0
    assert "| 26 | job LED |" in (hw / "README.md").read_text()
    assert "GPIO26: job LED" in (hw / "wiring.svg").read_text()
    assert _render("--check", "--dir", str(hw)).returncode == 0
    # the hand-written rest of the README is kept
    assert "## Not yet verified on real hardware" in (hw / "README.md").read_text()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("job = 19", "job = 5", "GPIO5 is given to both the power LED and the job LED"),
        ("job = 19", "job = 9", "GPIO9 (job LED) is reserved for SPI0 MISO"),
        ("job = 19", "job = 40", "job = 40 is not a GPIO of the Pi's header"),
        ("job = 19", 'job = "x"', "[leds] job must be a whole number"),
        ("channel = 0", "channel = 8", "the MCP3208 has channels 0 to 7"),
        ("\npin = 16\n", "\npin = 15\n", "the pin table lacks pins 16"),
        ("[button]", "[buttons]", "the table [button] is missing"),
        ("r_bottom_ohms = 10000", "r_bottom_ohms = 0", "[adc] r_bottom_ohms must be above 0"),
    ],
)
def test_a_wrong_pinout_says_what_is_wrong(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = DEFAULT_PINOUT.read_text()
    assert old in text
    path = tmp_path / "pinout.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(HardwareError) as err:
        load_pinout(path)
    assert message in str(err.value)
    assert "Correct the pinout file" in str(err.value)


def test_the_divider_maps_a_load_dump_into_the_adc_range() -> None:
    adc = load_pinout().adc
    assert adc.full_scale_volts > 35.0  # a clamped load dump (ISO 16750-2) still reads
    assert 14.8 / adc.divider_ratio < adc.vref
