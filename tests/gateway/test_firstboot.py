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
