"""The box's systemd units and network files, checked where CI runs (no VM needed): every unit
passes ``systemd-analyze verify`` without a word, meets its ``systemd-analyze security
--offline=yes`` exposure threshold, starts the ``vci`` command with arguments its parser accepts;
the nftables ruleset and the captive DNS configuration pass their tools' own checks; every file
under systemd/ is in the install list (systemd/install.txt) the image recipe reads.

``systemd-analyze verify`` checks that each ``ExecStart=`` binary exists: the units name
/opt/vci/venv/bin/vci (the box's venv) and /usr/sbin/hostapd, absent here, so the test verifies a
copy of each unit with those paths rewritten to an executable stub in a temporary directory (and
nothing else changed).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from firmware_py.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "systemd"
UNITS = sorted(SYSTEMD.glob("*.service"))
ANALYZE = "/usr/bin/systemd-analyze"

EXPOSURE_LIMITS = {
    "vci-gateway.service": 1.7,  # reached: 1.7 (no capability, closed device policy)
    "vci-firstboot.service": 1.0,  # reached: 1.0 (it reads /proc/cpuinfo: no ProcSubset=pid)
    "vci-captive-dns.service": 3.0,  # reached: 2.8 (dnsmasq binds port 53 as root, then drops)
    "vci-hostapd.service": 3.5,  # reached: 3.1 (nl80211 needs root's network capabilities)
    "vci-health.service": 2.5,  # reached: 2.4 (root on D-Bus, reads the 0700 state directory)
    "vci-update.service": 2.5,  # reached: 2.1 (root on D-Bus: RAUC's install, the reboot)
    "vci-machine-id.service": 1.5,  # reached: 1.3 (writes the EFI system partition only)
    # RAUC writes the root slots' block devices, sets up loop and dm-verity devices and mounts
    # bundles: CAP_SYS_ADMIN and raw device access are what it is for; it runs no code from
    # a bundle before the bundle's signature is checked
    "rauc.service": 9.6,  # reached: 9.6
}
"""the highest overall exposure each unit may have (``systemd-analyze security``; 0 is best)"""


def exec_lines(unit: Path) -> list[tuple[str, list[str]]]:
    """(key, argv) of the unit's Exec* lines, without systemd's prefixes (``+``, ``-`` ...)."""
    lines = []
    for line in unit.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("Exec"):
            lines.append((key, shlex.split(value.lstrip("+-@:!"))))
    return lines


def verify_output(units: list[Path], tmp_path: Path) -> str:
    """What ``systemd-analyze verify`` says about copies of ``units`` whose Exec binaries that are
    missing here point to a stub (empty: nothing to say)."""
    stub = tmp_path / "stub"
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    copies = []
    for unit in units:
        text = unit.read_text()
        for _, argv in exec_lines(unit):
            if not Path(argv[0]).exists():
                text = text.replace(argv[0], str(stub))
        copy = tmp_path / unit.name
        copy.write_text(text)
        copies.append(str(copy))
    proc = subprocess.run(
        [ANALYZE, "verify", "--man=no", *copies],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    return (proc.stdout + proc.stderr).strip() + (
        "" if proc.returncode == 0 else f" rc={proc.returncode}"
    )


def test_the_units_are_there() -> None:
    assert {u.name for u in UNITS} == set(EXPOSURE_LIMITS)


def test_systemd_analyze_verify_says_nothing(tmp_path: Path) -> None:
    assert verify_output([*UNITS, *sorted(SYSTEMD.glob("*.path"))], tmp_path) == ""


def test_verify_output_catches_a_bad_unit(tmp_path: Path) -> None:
    """The check above can fail: a unit with a wrong value makes systemd-analyze speak."""
    bad = tmp_path / "src" / "vci-bad.service"
    bad.parent.mkdir()
    bad.write_text("[Service]\nExecStart=/opt/vci/venv/bin/vci gateway\nRestart=sometimes\n")
    assert "sometimes" in verify_output([bad], tmp_path)


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_security_exposure_within_threshold(unit: Path) -> None:
    proc = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    exposure = float(found.group(1))
    print(f"{unit.name}: overall exposure {exposure}")
    assert exposure <= EXPOSURE_LIMITS[unit.name]


def test_gateway_unit_is_a_notify_service_with_watchdog_and_no_capabilities() -> None:
    text = (SYSTEMD / "vci-gateway.service").read_text()
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["Type"] == "notify"
    assert settings["WatchdogSec"] == "30s"
    assert settings["User"] == "vci"
    assert settings["StateDirectory"] == "vci"
    assert settings["CapabilityBoundingSet"] == ""
    assert settings["ProtectSystem"] == "strict"
    assert "AF_CAN" in settings["RestrictAddressFamilies"]
    # the device id tickets are bound to is the Pi's serial number in /proc/cpuinfo
    assert "ProcSubset" not in settings


@pytest.mark.parametrize(
    ("unit", "key", "argv"),
    [
        (unit.name, key, argv)
        for unit in UNITS
        for key, argv in exec_lines(unit)
        if argv[0] == "/opt/vci/venv/bin/vci"
    ],
)
def test_vci_command_lines_are_accepted_by_the_cli(unit: str, key: str, argv: list[str]) -> None:
    args = build_parser().parse_args(argv[1:])
    assert callable(args.func)
    if unit == "vci-gateway.service":
        assert args.resume_flash
        assert args.host == "192.168.73.1"  # the Wi-Fi address (30-vci-wlan0.network)


def test_every_file_is_in_the_install_list() -> None:
    sources, targets = set(), set()
    for line in (SYSTEMD / "install.txt").read_text().splitlines():
        words = line.split()
        flavour = ""
        if words and words[0] in ("amd64:", "arm64:"):  # that flavour's only
            flavour, words = words[0], words[1:]
        if words and words[0] == "install":
            _, source, target, mode = words
            assert (ROOT / source).is_file(), source
            assert target.startswith("/") and re.fullmatch(r"0[0-7]{3}", mode)
            sources.add(source)
            targets.add(flavour + target)
        elif words and words[0] in ("enable", "mask"):
            assert len(words) == 2 and words[1].endswith((".service", ".path"))
        else:
            assert not words or words[0].startswith("#"), line
    ours = {
        str(p.relative_to(ROOT))
        for p in SYSTEMD.rglob("*")
        if p.is_file() and p.name not in ("README.md", "install.txt")
    }
    assert ours <= sources, ours - sources
    assert len(targets) == len(sources)


def _tool(path: str) -> str:
    if not Path(path).exists():
        pytest.skip(f"{path} is not installed here (apt-get install {Path(path).name})")
    return path


def test_nftables_ruleset_passes_nft_check() -> None:
    nft = _tool("/usr/sbin/nft")
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed here")
    # in a network namespace of its own: the check touches no table of this machine
    proc = subprocess.run(
        ["unshare", "--net", nft, "-c", "-f", str(SYSTEMD / "nftables" / "vci.nft")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN (run as root)")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_captive_dns_configuration_passes_dnsmasq_check() -> None:
    dnsmasq = _tool("/usr/sbin/dnsmasq")
    proc = subprocess.run(
        [dnsmasq, "--test", f"--conf-file={SYSTEMD / 'dnsmasq' / 'vci-captive.conf'}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "syntax check OK" in proc.stdout + proc.stderr


def test_the_box_configuration_keeps_every_service_on_the_wifi_side() -> None:
    from firmware_py.config import load_config

    cfg = load_config(SYSTEMD / "vci.toml", env={})
    wlan = (SYSTEMD / "network" / "30-vci-wlan0.network").read_text()
    address = re.search(r"^Address=([0-9.]+)/24$", wlan, re.M)
    assert address, wlan
    gateway_argv = dict(exec_lines(SYSTEMD / "vci-gateway.service"))["ExecStart"]
    assert gateway_argv[gateway_argv.index("--host") + 1] == address.group(1)
    assert cfg.bridge.listen_host == address.group(1)
    assert cfg.transport.doip_host == "255.255.255.255"
    assert cfg.transport.can_interface == "socketcan"
    assert str(cfg.storage.state_dir) == "/var/lib/vci"
    dns = (SYSTEMD / "dnsmasq" / "vci-captive.conf").read_text()
    assert f"address=/#/{address.group(1)}" in dns


def test_battery_care_powers_off_through_the_path_unit_the_gateway_may_write() -> None:
    """The gateway (user vci, no privilege) cannot run systemctl poweroff; battery care's command
    in the box's configuration creates the file vci-poweroff.path watches, inside the gateway's
    own RuntimeDirectory, and that path unit starts poweroff.target."""
    from firmware_py.config import load_config

    cfg = load_config(SYSTEMD / "vci.toml", env={})
    assert cfg.hw.gpio
    argv = shlex.split(cfg.hw.shutdown_command)
    assert argv[0] == "touch" and len(argv) == 2
    path_unit = (SYSTEMD / "vci-poweroff.path").read_text()
    assert f"PathExists={argv[1]}\n" in path_unit and "Unit=poweroff.target\n" in path_unit
    gateway = (SYSTEMD / "vci-gateway.service").read_text()
    runtime = re.search(r"^RuntimeDirectory=(\S+)$", gateway, re.M)
    assert runtime and Path(argv[1]).parent == Path("/run") / runtime.group(1)


def test_a_root_unit_that_writes_in_the_gateways_directories_may_write_there() -> None:
    """/run/vci and /var/lib/vci are the gateway's user's (RuntimeDirectory, StateDirectory):
    root whose capabilities are bounded without CAP_DAC_OVERRIDE cannot create, rename or remove
    files in them. vci-update.service's ``mv`` of the install request failed so ("Permission
    denied", found by tests/appliance/test_vm_portal.py): no offered update was ever installed."""
    gateway = (SYSTEMD / "vci-gateway.service").read_text()
    owned = [
        Path(base) / m.group(1)
        for base, key in (("/run", "RuntimeDirectory"), ("/var/lib", "StateDirectory"))
        if (m := re.search(rf"^{key}=(\S+)$", gateway, re.M))
    ]
    assert len(owned) == 2
    checked = 0
    for unit in UNITS:
        text = unit.read_text()
        caps = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M)
        if re.search(r"^User=", text, re.M) or caps is None:
            continue  # the unit's own user, or root with every capability
        writes = [
            Path(p)
            for m in re.finditer(r"^ReadWritePaths=(.*)$", text, re.M)
            for p in m.group(1).split()
        ]
        if any(w == o or o in w.parents for w in writes for o in owned):
            checked += 1
            assert "CAP_DAC_OVERRIDE" in caps.group(1).split(), (
                f"{unit.name} writes in {writes} as root without CAP_DAC_OVERRIDE"
            )
    assert checked >= 1  # vci-update.service
