"""The gateway as the box runs it: vci-gateway.service under systemd in the booted image, as its
own user with the unit's hardening, READY=1 through sd_notify, and restarted by systemd's
watchdog when it stops answering (``kill -STOP``)."""

from __future__ import annotations

from tests.appliance.conftest import VCI, Vm, record

UNIT = "vci-gateway.service"
READY_TIMEOUT = 240.0
"""boot to READY=1: the unit waits for first boot, the access point and wlan0 (docs/appliance.md)"""


def unit_props(vm: Vm, *names: str) -> dict[str, str]:
    out = vm.check(f"systemctl show {UNIT} " + " ".join(f"-p {n}" for n in names))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_ready(vm: Vm) -> dict[str, str]:
    vm.wait_for(
        f'[ "$(systemctl show -p SubState --value {UNIT})" = running ]', READY_TIMEOUT, "READY=1"
    )
    return unit_props(vm, "MainPID", "NRestarts", "ActiveEnterTimestampMonotonic")


def test_the_boot_has_no_ordering_cycle_and_no_failed_unit(vm: Vm) -> None:
    """systemd breaks an ordering cycle by dropping a start job, and the box then boots without
    that unit (the first boot's Wi-Fi set-up was dropped so, and the gateway waited 120 s for
    wlan0): the boot's journal must not name one, and no unit may have failed."""
    wait_ready(vm)
    cycles = vm.run("journalctl -b -o cat --no-pager | grep -i 'ordering cycle'")
    assert cycles.out.strip() == "", cycles.out
    assert vm.check("systemctl list-units --failed --plain --no-legend").strip() == ""
    for unit in ("vci-firstboot.service", "vci-hostapd.service", "vci-captive-dns.service"):
        assert vm.check(f"systemctl is-active {unit}").strip() == "active", unit
    # the journal may name a VIN: journald keeps it 30 days (docs/data-protection.md)
    journald = vm.check("systemd-analyze cat-config systemd/journald.conf")
    assert "MaxRetentionSec=30day" in journald and "MaxFileSec=1day" in journald, journald


def test_gateway_reaches_ready_as_its_own_user_with_the_hardening(vm: Vm) -> None:
    props = wait_ready(vm)
    # Type=notify: the unit is "Started" only after the gateway sent READY=1; the first start of
    # this boot (other tests restart the gateway), in seconds since the kernel started
    first = vm.check(
        "journalctl -b -u vci-gateway.service -o short-monotonic --no-pager "
        "| grep -m1 'Started vci-gateway.service'"
    )
    record("boot: kernel start to READY=1 of vci-gateway.service",
           float(first.split("]")[0].lstrip("[ ")))  # fmt: skip
    pid = props["MainPID"]
    with vm.timed("check: gateway user, capabilities and unit hardening"):
        assert vm.check(f"ps -o user= -p {pid}").strip() == "vci"
        status = vm.check(f"cat /proc/{pid}/status")
        caps = {k: v.strip() for k, v in (line.split(":", 1) for line in status.splitlines())}
        assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == "0000000000000000"
        assert caps["NoNewPrivs"] == "1"
        hardening = unit_props(
            vm, "Type", "User", "WatchdogUSec", "ProtectSystem", "ProtectHome", "PrivateTmp",
            "NoNewPrivileges", "RestrictNamespaces", "MemoryDenyWriteExecute", "DevicePolicy",
            "StateDirectory",
        )  # fmt: skip
        assert hardening["Type"] == "notify" and hardening["User"] == "vci"
        assert hardening["WatchdogUSec"] not in ("0", "infinity")  # e.g. "30s"
        assert hardening["ProtectSystem"] == "strict" and hardening["DevicePolicy"] == "closed"
        assert hardening["NoNewPrivileges"] == hardening["MemoryDenyWriteExecute"] == "yes"
        assert hardening["StateDirectory"] == "vci"
        # the root file system is read-only to the gateway; its state directory is its own
        mount_ns = f"nsenter -t {pid} -m"
        assert vm.run(f"{mount_ns} touch /opt/vci/probe").rc != 0
        assert vm.check("stat -c %U:%a /var/lib/vci").strip() == "vci:700"
        # root's vci acts as the state's owner: nothing in it is ever root's (the gateway could
        # not write a database root made); the tests before this one ran vci as root too
        vm.check(f"{VCI} --json ticket list")
        assert vm.check("find /var/lib/vci -user root").strip() == ""


def test_hardware_watchdog_is_armed_by_systemd(vm: Vm) -> None:
    assert vm.check("systemctl show -p RuntimeWatchdogUSec --value").strip() not in (
        "0",
        "infinity",
    )
    assert vm.check("cat /sys/class/watchdog/watchdog0/state").strip() == "active"


def test_stopped_gateway_is_restarted_by_the_watchdog(vm: Vm) -> None:
    before = wait_ready(vm)
    with vm.timed("check: kill -STOP -> watchdog restart -> READY=1 again"):
        vm.check(f"kill -STOP {before['MainPID']}")
        vm.wait_for(
            f'[ "$(systemctl show -p NRestarts --value {UNIT})" -gt {before["NRestarts"]} ]',
            150,
            "a restart by the watchdog",
        )
        after = wait_ready(vm)
    assert after["MainPID"] != before["MainPID"]
    journal = vm.check(f"journalctl -u {UNIT} -o cat --no-pager | tail -n 200")
    assert "Watchdog timeout" in journal, journal
