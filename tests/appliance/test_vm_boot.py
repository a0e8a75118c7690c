"""The booted appliance: the kernel offers what the box needs (SocketCAN, ISO-TP, the watchdog)."""

from __future__ import annotations

from tests.appliance.conftest import Vm


def test_vm_boots_with_socketcan_and_kernel_isotp(vm: Vm) -> None:
    with vm.timed("check: vcan0 up, can-isotp loaded"):
        vm.check("modprobe vcan && modprobe can-isotp")
        vm.check("ip link add vcan0 type vcan 2>/dev/null || true; ip link set vcan0 up")
        assert "can_isotp" in vm.check("cat /proc/modules")
        assert "UP" in vm.check("ip -br link show vcan0")


def test_vm_has_the_hardware_watchdog(vm: Vm) -> None:
    with vm.timed("check: i6300esb watchdog present"):
        assert "i6300ESB" in vm.check("cat /sys/class/watchdog/watchdog0/identity")
