"""Which ISO-TP implementation a CAN link uses ([transport] isotp_stack): the kernel's CAN_ISOTP
sockets only on socketcan; can-isotp's user-space stack on every other bus. The kernel path
itself runs in the appliance VM (tests/appliance/test_vm_can.py), where vcan and can-isotp are."""

from __future__ import annotations

from collections.abc import Iterator

import can
import pytest

from firmware_py.config import ConfigError, TransportConfig
from firmware_py.errors import TransportError
from firmware_py.transport.isotp_link import choose_isotp_stack, open_can_link


@pytest.fixture
def bus() -> Iterator[can.BusABC]:
    b = can.Bus(interface="virtual", channel="isotp-stack-test")
    yield b
    b.shutdown()


def test_auto_and_user_take_the_user_space_stack_on_a_non_socketcan_bus(bus: can.BusABC) -> None:
    assert choose_isotp_stack("auto", bus) == "user"
    assert choose_isotp_stack("user", bus) == "user"
    link = open_can_link(bus, isotp_stack="auto")
    try:
        assert link.isotp_stack == "user"
        assert "user ISO-TP" in link.description
    finally:
        link.close()


def test_kernel_on_a_non_socketcan_bus_says_what_to_do(bus: can.BusABC) -> None:
    with pytest.raises(TransportError) as err:
        choose_isotp_stack("kernel", bus)
    assert "socketcan" in str(err.value)
    assert "isotp_stack" in (err.value.hint or "")


def test_isotp_stack_setting_is_checked() -> None:
    assert TransportConfig(isotp_stack="kernel").isotp_stack == "kernel"
    with pytest.raises(ConfigError):
        TransportConfig(isotp_stack="fast")
