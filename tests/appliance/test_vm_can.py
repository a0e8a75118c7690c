"""The box on a real SocketCAN bus in the VM: ``vci sim`` on vcan0, ``vci identify`` over the
kernel's ISO-TP (CAN_ISOTP sockets of module can-isotp) and over can-isotp's user-space stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.appliance.conftest import VCI, Vm

CAN = "--can --can-interface socketcan --can-channel vcan0"


def split_log_and_json(out: str) -> tuple[str, Any]:
    """``vci -v --json`` output: the log lines (the CLI logs to stdout, for journald), then the
    JSON document from its first line that is ``{``."""
    lines = out.splitlines()
    start = lines.index("{")
    return "\n".join(lines[:start]), json.loads("\n".join(lines[start:]))


@pytest.fixture(scope="module")
def can_vm(vm: Vm) -> Iterator[Vm]:
    vm.check("modprobe vcan && modprobe can-isotp")
    vm.check(
        "ip link show vcan0 >/dev/null 2>&1 || ip link add vcan0 type vcan; ip link set vcan0 up"
    )
    with vm.timed("check: vci sim on vcan0 ready"):
        vm.start_sim(
            "can", "--can-interface", "socketcan", "--can-channel", "vcan0", "--doip-port", "0",
            "--control-port", "0", "--hsfz-port", "0", "--hsfz-control-port", "0",
            "--announce-to", "",
        )  # fmt: skip
    yield vm
    vm.stop_sims()


@pytest.mark.parametrize("stack", ["kernel", "user"])
def test_identify_over_socketcan_vcan0(can_vm: Vm, stack: str) -> None:
    with can_vm.timed(f"check: vci identify over vcan0, {stack} ISO-TP"):
        result = can_vm.run(f"{VCI} -v --json identify {CAN} --isotp-stack {stack}", timeout=120)
    assert result.rc == 0, result
    wanted = (
        "the kernel's (CAN_ISOTP sockets)" if stack == "kernel" else "can-isotp's user-space stack"
    )
    log, identified = split_log_and_json(result.out)
    assert f"ISO-TP on socketcan channel 'vcan0': {wanted}" in log, log
    assert identified["vin"] == "WBAJA71090B123456"
    assert {e["name"] for e in identified["ecus"] if e["present"]} >= {"ZGW", "DME", "EGS"}


def test_auto_takes_the_kernel_isotp_on_socketcan(can_vm: Vm) -> None:
    result = can_vm.run(f"{VCI} -v --json identify {CAN}", timeout=120)
    assert result.rc == 0, result
    log, _ = split_log_and_json(result.out)
    assert "ISO-TP on socketcan channel 'vcan0': the kernel's (CAN_ISOTP sockets)" in log, log
