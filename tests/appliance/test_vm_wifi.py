"""The tablet's Wi-Fi in the VM: the box's access point on one mac80211_hwsim radio (wlan0, from
the first boot's SSID and key), a tablet on the other radio (wlan1, moved into a network
namespace) associates with that key, gets the page and resolves ``vci-xxxx.local`` through the
box's DNS; from the car's side (the ENET veth) the page cannot be reached."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.appliance.conftest import Vm

UNIT = "vci-gateway.service"
TABLET = "192.168.73.200"
"""the tablet's address (outside the box's DHCP pool; the image has no DHCP client)"""
TABLET_NS = "ip netns exec tablet"


def write(vm: Vm, path: str, text: str) -> None:
    vm.check(f"echo {base64.b64encode(text.encode()).decode()} | base64 -d > {path}")


def supplicant_conf(ctrl: str, ssid: str, passphrase: str) -> str:
    return (
        f"ctrl_interface={ctrl}\nnetwork={{\n"
        f'  ssid="{ssid}"\n  psk="{passphrase}"\n  key_mgmt=WPA-PSK\n  proto=RSN\n}}\n'
    )


@pytest.fixture(scope="module")
def tablet_vm(vm: Vm) -> Iterator[Vm]:
    """The AP up on wlan0 and the second radio (wlan1) in the namespace ``tablet``."""
    vm.wait_for(
        f'[ "$(systemctl show -p SubState --value {UNIT})" = running ]', 240, "gateway ready"
    )
    vm.wait_for("iw dev wlan0 info | grep -q 'type AP'", 60, "hostapd's AP on wlan0")
    vm.check(
        'ip netns add tablet && iw phy "$(cat /sys/class/net/wlan1/phy80211/name)" set netns '
        "name tablet && ip -n tablet link set lo up && ip -n tablet link set wlan1 up"
    )
    yield vm
    vm.run(f"{TABLET_NS} pkill -f wpa-tablet; ip netns del tablet")


def identity(vm: Vm) -> dict[str, str]:
    return dict(json.loads(vm.check("cat /var/lib/vci/wifi/identity.json")))


def test_tablet_joins_with_the_generated_key_resolves_the_box_and_gets_the_page(
    tablet_vm: Vm,
) -> None:
    ident = identity(tablet_vm)
    write(
        tablet_vm,
        "/run/tablet.conf",
        supplicant_conf("/run/wpa-tablet", ident["ssid"], ident["passphrase"]),
    )
    with tablet_vm.timed("check: tablet associates with the generated WPA2 key"):
        tablet_vm.wait_for(
            f"! {TABLET_NS} test -e /run/wpa-tablet/wlan1", 20, "old supplicant gone"
        )
        tablet_vm.check(
            f"{TABLET_NS} wpa_supplicant -B -i wlan1 -c /run/tablet.conf -f /tmp/wpa.log"
        )
        tablet_vm.wait_for(
            f"{TABLET_NS} wpa_cli -p /run/wpa-tablet -i wlan1 status | grep -q wpa_state=COMPLETED",
            60,
            "association",
        )
    tablet_vm.check(f"ip -n tablet addr add {TABLET}/24 dev wlan1")
    hostname = ident["hostname"]
    with tablet_vm.timed("check: tablet gets the page"):
        status = tablet_vm.check(
            f"{TABLET_NS} curl -s -o /tmp/page.html -w '%{{http_code}}' --max-time 20 "
            "http://192.168.73.1:8080/",
            timeout=60,
        )
    assert status.strip() in ("200", "302", "303"), status
    # the box's German catalogue came with the image (the wheel's package data)
    german = tablet_vm.check(
        f"{TABLET_NS} curl -s --max-time 20 http://192.168.73.1:8080/i18n/de.json", timeout=60
    )
    assert '"Fault memory": "Fehlerspeicher"' in german, german[:300]
    script = Path(__file__).with_name("vm_scripts") / "dns_query.py"
    write(tablet_vm, "/tmp/dns_query.py", script.read_text())
    # the name as a tablet's browser looks it up: from the DNS server the box's DHCP names
    # (the box itself, 192.168.73.1)
    with tablet_vm.timed(f"check: tablet resolves {hostname}.local (the box's DNS)"):
        result = tablet_vm.run(
            f"{TABLET_NS} python3 /tmp/dns_query.py {hostname}.local {TABLET} 192.168.73.1 20",
            timeout=60,
        )
    assert result.rc == 0, result
    assert result.out.strip() == "192.168.73.1"
    # and as a tablet that asks by mDNS (RFC 6762): systemd-resolved answers on wlan0 only
    with tablet_vm.timed(f"check: tablet resolves {hostname}.local by mDNS"):
        result = tablet_vm.run(
            f"{TABLET_NS} python3 /tmp/dns_query.py {hostname}.local {TABLET} mdns 30",
            timeout=60,
        )
    assert result.rc == 0, result
    assert result.out.strip() == "192.168.73.1"
    # the captive portal: a tablet's connectivity check resolves to the box and, on port 80
    # (nftables redirects it to the page), is sent to the page under the box's own address
    with tablet_vm.timed("check: captive portal (foreign name -> box -> 302 to the page)"):
        probe = "connectivitycheck.gstatic.com"
        result = tablet_vm.run(
            f"{TABLET_NS} python3 /tmp/dns_query.py {probe} {TABLET} 192.168.73.1 20", timeout=60
        )
        assert result.rc == 0 and result.out.strip() == "192.168.73.1", result
        answer = tablet_vm.check(
            f"{TABLET_NS} curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' "
            f"--max-time 20 --resolve {probe}:80:192.168.73.1 http://{probe}/generate_204",
            timeout=60,
        )
    assert answer.split() == ["302", "http://192.168.73.1/"], answer
    # the API is never served under a foreign name (DNS rebinding): 421, no redirect
    api = tablet_vm.check(
        f"{TABLET_NS} curl -s -o /dev/null -w '%{{http_code}}' --max-time 20 "
        f"--resolve {probe}:80:192.168.73.1 http://{probe}/api/session",
        timeout=60,
    )
    assert api == "421", api


def test_a_wrong_key_is_refused_by_the_access_point(tablet_vm: Vm) -> None:
    ident = identity(tablet_vm)
    write(
        tablet_vm,
        "/run/tablet-bad.conf",
        supplicant_conf("/run/wpa-tablet", ident["ssid"], "not-the-key-1234"),
    )
    tablet_vm.run(f"{TABLET_NS} wpa_cli -p /run/wpa-tablet -i wlan1 terminate")
    tablet_vm.wait_for(f"! {TABLET_NS} test -e /run/wpa-tablet/wlan1", 20, "supplicant gone")
    tablet_vm.check(
        f"{TABLET_NS} wpa_supplicant -B -i wlan1 -c /run/tablet-bad.conf -f /tmp/wpa-bad.log"
    )
    try:
        tablet_vm.wait_for(
            "grep -q 'pre-shared key may be incorrect' /tmp/wpa-bad.log", 60, "refusal"
        )
        state = tablet_vm.check(f"{TABLET_NS} wpa_cli -p /run/wpa-tablet -i wlan1 status")
        assert "wpa_state=COMPLETED" not in state
    finally:
        tablet_vm.run(f"{TABLET_NS} wpa_cli -p /run/wpa-tablet -i wlan1 terminate")
