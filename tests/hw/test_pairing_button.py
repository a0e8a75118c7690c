"""The box's pairing button through gpiozero's mock pin factory pairs the waiting tablet."""

from __future__ import annotations

from gpiozero.pins.mock import MockFactory

from firmware_py.gateway.store import Store
from firmware_py.hw.buttons import PairingButton
from firmware_py.hw.pinout import load_pinout
from firmware_py.web.pairing import Pairing


def test_pressing_the_button_pairs_the_waiting_tablet(tmp_path) -> None:
    factory = MockFactory()
    pairing = Pairing(Store(tmp_path), "TESTCODE7")
    rid, claim = pairing.request("Werkstatt-Tablet", now=1000)
    assert pairing.collect(rid, claim, now=1008) is None  # the tablet waits for the answer
    presses: list[str] = []
    gpio = load_pinout().pairing_button  # the gateway's button pin (hardware/pinout.toml)
    button = PairingButton(
        gpio,
        lambda: presses.append(pairing.press_button(now=1010)),
        pin_factory=factory,
        bounce_time=None,
    )
    try:
        pin = factory.pin(gpio)
        pin.drive_low()  # pressed (pull-up: the button pulls the line low)
        pin.drive_high()
        assert presses == [f"Werkstatt-Tablet ({pairing.pending(rid).short_code})"]
        got = pairing.collect(rid, claim, now=1011)
        assert got is not None and got[1].how == "button"
    finally:
        button.close()
