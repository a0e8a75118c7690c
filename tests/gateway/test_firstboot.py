"""First boot (firmware_py/gateway/firstboot.py, ``vci firstboot`` / ``vci label``): the box's
Wi-Fi name and WPA2 key made once and kept, hostapd's configuration and the label sheet."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from firmware_py.errors import ConfigError
from firmware_py.gateway.firstboot import (
    KEY_ALPHABET,
    WifiIdentity,
    hostapd_conf,
    label_sheet,
    new_passphrase,
    suffix_for,
)
from tests.conftest import vci

KEY = re.compile(rf"[{KEY_ALPHABET}]{{4}}(-[{KEY_ALPHABET}]{{4}}){{3}}")


def _config(tmp_path: Path, device: str = "pi-10000000abcd1234") -> dict[str, str]:
    tmp_path.mkdir(exist_ok=True)
    config = tmp_path / "vci.toml"
    config.write_text(f'[storage]\nstate_dir = "{tmp_path / "state"}"\n[device]\nid = "{device}"\n')
    return {**os.environ, "VCI_CONFIG": str(config)}


def parse_hostapd(text: str) -> dict[str, str]:
    """hostapd's format: ``name=value`` lines, ``#`` comments; a name twice is an error here."""
    conf: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[a-z0-9_]+", name), f"not a hostapd line: {line!r}"
        assert name not in conf, f"{name} twice"
        conf[name] = value
    return conf


def test_firstboot_makes_the_wifi_identity_once_and_keeps_it(tmp_path: Path) -> None:
    env = _config(tmp_path)
    first = vci("firstboot", "--country", "DE", env=env)
    assert first.returncode == 0, first.stderr
    state = tmp_path / "state"
    conf = parse_hostapd((state / "wifi" / "hostapd.conf").read_text())
    label = vci("label", env=env)
    assert label.returncode == 0, label.stderr

    again = vci("firstboot", "--country", "DE", env=env)  # every boot runs it
    assert again.returncode == 0, again.stderr
    assert parse_hostapd((state / "wifi" / "hostapd.conf").read_text()) == conf
    assert vci("label", env=env).stdout == label.stdout

    assert conf["ssid"] == "VCI-1234"  # the last 4 of the Raspberry Pi's serial number
    assert KEY.fullmatch(conf["wpa_passphrase"])
    assert conf["country_code"] == "DE"
    assert f"Wi-Fi key (WPA2):   {conf['wpa_passphrase']}" in label.stdout
    assert "http://vci-1234.local/" in label.stdout
    code = (state / "label-code").read_text().strip()
    assert f"Pairing code:       {code}" in label.stdout
    for secret in ("wifi/hostapd.conf", "wifi/identity.json", "label.txt", "label-code"):
        assert stat.S_IMODE((state / secret).stat().st_mode) == 0o600, secret
    assert stat.S_IMODE((state / "wifi").stat().st_mode) == 0o700


def test_two_boxes_get_different_keys(tmp_path: Path) -> None:
    keys = set()
    for n in range(2):
        env = _config(tmp_path / str(n))
        assert vci("firstboot", env=env).returncode == 0
        keys.add(
            parse_hostapd((tmp_path / str(n) / "state/wifi/hostapd.conf").read_text())[
                "wpa_passphrase"
            ]
        )
    assert len(keys) == 2


def test_label_before_firstboot_says_what_to_do(tmp_path: Path) -> None:
    proc = vci("label", env=_config(tmp_path))
    assert proc.returncode != 0
    assert "vci firstboot" in proc.stderr + proc.stdout


def test_hostapd_conf_is_a_wpa2_ccmp_access_point_on_wlan0() -> None:
    conf = parse_hostapd(hostapd_conf(WifiIdentity("VCI-00AF", new_passphrase(), "vci-00af")))
    assert conf["interface"] == "wlan0" and conf["driver"] == "nl80211"
    assert conf["wpa"] == "2"  # WPA2 (RSN) only, no WPA1
    assert conf["wpa_key_mgmt"] == "WPA-PSK"
    assert conf["rsn_pairwise"] == "CCMP"  # no TKIP
    assert "wpa_pairwise" not in conf
    assert conf["auth_algs"] == "1"  # open system authentication, no WEP shared key
    assert conf["ignore_broadcast_ssid"] == "0"
    assert conf["ap_isolate"] == "1"
    assert 8 <= len(conf["wpa_passphrase"]) <= 63
    assert "country_code" not in conf  # none given: the world regulatory domain
    assert not any("$" in value for value in conf.values())


@pytest.mark.parametrize(
    ("identity", "country"),
    [
        (WifiIdentity("VCI-0001", "ABCD-EFGH", "vci-0001"), "de"),
        (WifiIdentity("VCI-0001", "ABCD-EFGH", "vci-0001"), "DE\ninterface=eth0"),
        (WifiIdentity("VCI-0001\nwpa=0", "ABCD-EFGH", "vci-0001"), ""),
        (WifiIdentity("VCI-0001", "short", "vci-0001"), ""),
    ],
)
def test_hostapd_conf_refuses_what_would_change_its_meaning(identity: Any, country: str) -> None:
    with pytest.raises(ConfigError):
        hostapd_conf(identity, country)


def test_passphrases_are_random_and_readable() -> None:
    keys = [new_passphrase() for _ in range(2000)]
    assert len(set(keys)) == len(keys)
    assert all(KEY.fullmatch(k) for k in keys)
    assert not set("0O1I2Z5S8B") & set(KEY_ALPHABET)
    used = {c for k in keys for c in k if c != "-"}
    assert used == set(KEY_ALPHABET)  # every symbol is drawn (2000 keys: all 26 come up)


@pytest.mark.parametrize(
    ("device", "suffix"),
    [("pi-10000000abcd1234", "1234"), ("pi-e4f1", "E4F1"), ("box-test-0001", None)],
)
def test_suffix_from_the_device_id(device: str, suffix: str | None) -> None:
    got = suffix_for(device)
    assert re.fullmatch(r"[0-9A-F]{4}", got)
    if suffix is not None:
        assert got == suffix
    assert suffix_for(device) == got  # stable


def test_label_wifi_qr_text_escapes_special_characters() -> None:
    sheet = label_sheet(WifiIdentity("VCI;1", "AB:CD,EF", "vci-1"), "dev", "CODE")
    assert r"WIFI:T:WPA;S:VCI\;1;P:AB\:CD\,EF;;" in sheet


def _key_and_csr(state: Path) -> tuple[bytes, Any]:
    from cryptography import x509

    return (
        (state / "identity" / "box.key").read_bytes(),
        x509.load_pem_x509_csr((state / "identity" / "box.csr").read_bytes()),
    )


def test_firstboot_makes_the_box_identity_once_and_keeps_it(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from firmware_py.identity import common_name

    env = _config(tmp_path)
    first = vci("firstboot", env=env)
    assert first.returncode == 0, first.stderr
    state = tmp_path / "state"
    key, csr = _key_and_csr(state)
    again = vci("firstboot", env=env)
    assert again.returncode == 0, again.stderr
    assert _key_and_csr(state)[0] == key  # the same key at every boot
    assert (state / "identity" / "device-id").read_text().strip() == "pi-10000000abcd1234"
    assert stat.S_IMODE((state / "identity" / "box.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "identity").stat().st_mode) == 0o700
    private = serialization.load_pem_private_key(key, password=None)
    assert private.key_size == 256 and csr.public_key() == private.public_key()
    assert common_name(csr.subject) == "pi-10000000abcd1234" and csr.is_signature_valid
    for proc in (first, again, vci("label", env=env)):
        assert "PRIVATE" not in proc.stdout + proc.stderr


def test_without_a_configured_id_the_machine_gives_one_and_all_agree(tmp_path: Path) -> None:
    """On a PC or the CI's VM (no Raspberry Pi serial) the id comes from /etc/machine-id, is kept
    in the state directory, and the tickets' id, the CSR, the Wi-Fi name and the hostname agree."""
    import json

    from firmware_py.config import device_id, load_config
    from firmware_py.identity import common_name, derived_device_id

    expected = derived_device_id()
    if expected is None:
        pytest.skip("this machine has neither a Raspberry Pi serial nor a machine-id")
    if Path("/etc/vci/device-id").exists():
        pytest.skip("/etc/vci/device-id names this machine")
    config = tmp_path / "vci.toml"
    config.write_text(f'[storage]\nstate_dir = "{tmp_path / "state"}"\n')
    env = {**os.environ, "VCI_CONFIG": str(config)}
    assert vci("firstboot", env=env).returncode == 0
    state = tmp_path / "state"
    assert (state / "identity" / "device-id").read_text().strip() == expected
    assert device_id(load_config(config, env={})) == expected  # what tickets are bound to
    assert common_name(_key_and_csr(state)[1].subject) == expected
    wifi = json.loads((state / "wifi" / "identity.json").read_text())
    assert wifi["ssid"] == f"VCI-{suffix_for(expected)}"
    assert wifi["hostname"] == f"vci-{suffix_for(expected).lower()}"
    status = vci("enrol", "status", env=env)
    assert json.loads(status.stdout)["device"] == expected
    if expected.startswith("vci-"):  # the machine-id itself is not shown (machine-id(5))
        assert Path("/etc/machine-id").read_text().strip()[:12] not in expected


@pytest.mark.parametrize(
    ("cpuinfo", "machine_id", "device"),
    [
        ("Hardware\t: BCM2835\nSerial\t\t: 10000000abcd1234\n", "", "pi-10000000abcd1234"),
        ("Serial : 00000000e4f1aa02\n", "3d1219c7c4c5404aaa1f6d2a48adfda4\n", "pi-e4f1aa02"),
        ("processor : 0\n", "3d1219c7c4c5404aaa1f6d2a48adfda4\n", "vci-"),
        ("processor : 0\n", "uninitialized\n", None),
        ("processor : 0\n", "", None),
    ],
)
def test_device_id_from_the_board_serial_or_the_machine_id(
    tmp_path: Path, cpuinfo: str, machine_id: str, device: str | None
) -> None:
    from firmware_py.identity import derived_device_id

    (tmp_path / "cpuinfo").write_text(cpuinfo)
    (tmp_path / "machine-id").write_text(machine_id)
    got = derived_device_id(tmp_path / "cpuinfo", tmp_path / "machine-id")
    if device is None or not device.endswith("-"):
        assert got == device
    else:
        assert got is not None and re.fullmatch(r"vci-[0-9a-f]{12}", got)
        assert got == derived_device_id(tmp_path / "cpuinfo", tmp_path / "machine-id")


def test_a_configured_id_wins_and_the_wifi_name_follows_it(tmp_path: Path) -> None:
    import json

    from firmware_py.identity import common_name

    assert vci("firstboot", env=_config(tmp_path)).returncode == 0
    state = tmp_path / "state"
    key, _ = _key_and_csr(state)
    before = json.loads((state / "wifi" / "identity.json").read_text())
    assert vci("firstboot", env=_config(tmp_path, "pi-10000000abcd9876")).returncode == 0
    after = json.loads((state / "wifi" / "identity.json").read_text())
    assert (after["ssid"], after["hostname"]) == ("VCI-9876", "vci-9876")
    assert after["passphrase"] == before["passphrase"]  # the key printed on the label stays
    new_key, csr = _key_and_csr(state)
    assert new_key == key and common_name(csr.subject) == "pi-10000000abcd9876"


def test_the_label_sheet_has_the_wifi_and_page_qr_codes(tmp_path: Path) -> None:
    import json

    import segno

    from firmware_py.gateway.firstboot import wifi_qr_text
    from firmware_py.gateway.label import QR_ERROR, QR_SCALE, page_url

    env = _config(tmp_path)
    assert vci("firstboot", env=env).returncode == 0
    state = tmp_path / "state"
    sheet = tmp_path / "label.html"
    proc = vci("label", "--html", str(sheet), env=env)
    assert proc.returncode == 0, proc.stderr
    html = sheet.read_text()
    wifi = json.loads((state / "wifi" / "identity.json").read_text())
    identity = WifiIdentity(wifi["ssid"], wifi["passphrase"], wifi["hostname"])
    join = wifi_qr_text(identity)
    assert join == f"WIFI:T:WPA;S:{identity.ssid};P:{identity.passphrase};;"
    # segno cannot decode: the QR codes are the ones made from the expected data
    for text in (join, "http://vci-1234.local/"):
        svg = segno.make(text, error=QR_ERROR, micro=False).svg_inline(scale=QR_SCALE)
        assert svg in html, text
    assert page_url(identity) == "http://vci-1234.local/"
    code = (state / "label-code").read_text().strip()
    for value in ("pi-10000000abcd1234", code, identity.ssid, identity.passphrase):
        assert f"<td>{value}</td>" in html
    assert stat.S_IMODE((state / "label.html").stat().st_mode) == 0o600
    assert "Device id:          pi-10000000abcd1234" in vci("label", env=env).stdout


def test_label_html_escapes_what_it_shows() -> None:
    from firmware_py.gateway.label import label_html

    page = label_html(WifiIdentity("VCI-<b>", "AB&CD-EFGH", "vci-1"), "dev<script>", "CODE")
    assert "<script>" not in page and "dev&lt;script&gt;" in page and "AB&amp;CD" in page
