"""The box's identity on its Wi-Fi, made at first boot (``vci firstboot``; docs/appliance.md);
its identity towards the portal (device id, key, CSR) is firmware_py/identity.py, its printable
label sheet firmware_py/gateway/label.py.

Owns, in the state directory: ``wifi/identity.json`` (the SSID ``VCI-XXXX`` and a random WPA2
passphrase, made once and kept), ``wifi/hostapd.conf`` (rendered from the packaged template at
every run, so an update of the template reaches every box), the pairing code (``label-code``) and
``label.txt``, the label sheet printed for the box's lid: the Wi-Fi name and key, the page's
address and the pairing code. ``XXXX`` comes from the device id tickets are bound to (the Raspberry
Pi's serial number), so it is known before any network device appears and never changes; the
hostname ``vci-xxxx`` gives the mDNS name ``vci-xxxx.local``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from firmware_py.errors import ConfigError
from firmware_py.i18n import N_

KEY_ALPHABET = "ACDEFGHJKLMNPQRTUVWXY34679"
"""letters and digits that cannot be mistaken for one another on a printed label (no 0/O, 1/I,
2/Z, 5/S, 8/B): 26 symbols, 4.7 bits each"""
KEY_GROUPS = 4
KEY_GROUP_LENGTH = 4
"""the passphrase is 4 groups of 4 (``XXXX-XXXX-XXXX-XXXX``): 75 bits, typed on a tablet"""
WIFI_ADDRESS = "192.168.73.1"
"""the box on its Wi-Fi (systemd/network/30-vci-wlan0.network); the page listens here"""


@dataclass(frozen=True)
class WifiIdentity:
    ssid: str
    passphrase: str
    hostname: str


def suffix_for(device: str) -> str:
    """``XXXX``: 4 hex digits that stand for the device id (the last 4 of a Raspberry Pi's serial
    number or of the machine-id form ``vci-<hex>``, a hash of any other id)."""
    tail = device.removeprefix("pi-").removeprefix("vci-").lower()
    if re.fullmatch(r"[0-9a-f]{4,}", tail):
        return tail[-4:].upper()
    return hashlib.sha256(device.encode()).hexdigest()[:4].upper()


def new_passphrase() -> str:
    groups = (
        "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_GROUP_LENGTH))
        for _ in range(KEY_GROUPS)
    )
    return "-".join(groups)


def wifi_identity(state_dir: Path, device: str) -> WifiIdentity:
    """The box's Wi-Fi name and key: read from the state directory, made there if missing."""
    path = state_dir / "wifi" / "identity.json"
    suffix = suffix_for(device)
    ssid, hostname = f"VCI-{suffix}", f"vci-{suffix.lower()}"
    if path.exists():
        data = json.loads(path.read_text())
        identity = WifiIdentity(data["ssid"], data["passphrase"], data["hostname"])
        if (identity.ssid, identity.hostname) == (ssid, hostname):
            return identity
        # the device id changed ([device] id): the name follows it, the key stays
        identity = WifiIdentity(ssid, identity.passphrase, hostname)
    else:
        identity = WifiIdentity(ssid, new_passphrase(), hostname)
    _write_private(path, json.dumps(identity.__dict__, indent=1) + "\n")
    return identity


def hostapd_conf(identity: WifiIdentity, country: str = "", channel: int = 6) -> str:
    """hostapd's configuration for the tablets' access point (WPA2-PSK with CCMP only)."""
    if country and not re.fullmatch(r"[A-Z]{2}", country):
        raise ConfigError(
            N_("the Wi-Fi country {country} is not an ISO 3166-1 code"),
            values={"country": repr(country)},
            hint=N_("Give the two capital letters of the country the box is used in, e.g. DE"),
        )
    for what, value in (("SSID", identity.ssid), ("passphrase", identity.passphrase)):
        if not value.isascii() or not value.isprintable() or "\n" in value:
            raise ConfigError(N_("the Wi-Fi {what} must be printable ASCII"), values={"what": what})
    if not 8 <= len(identity.passphrase) <= 63:
        raise ConfigError(N_("a WPA2 passphrase has 8 to 63 characters"))
    template = resources.files("firmware_py.gateway").joinpath("hostapd.conf.in").read_text()
    regulatory = f"country_code={country}\nieee80211d=1\n" if country else ""
    return Template(template).substitute(
        ssid=identity.ssid,
        passphrase=identity.passphrase,
        channel=channel,
        regulatory=regulatory,
    )


def wifi_qr_text(identity: WifiIdentity) -> str:
    """The Wi-Fi join text of the label's QR code (ZXing's format, what Android and iOS cameras
    read), escaped."""
    return f"WIFI:T:WPA;S:{_qr_escape(identity.ssid)};P:{_qr_escape(identity.passphrase)};;"


def label_sheet(identity: WifiIdentity, device: str, pairing_code: str) -> str:
    """The text of the box's label: what a workshop needs to claim the box, join its Wi-Fi and
    pair a tablet."""
    qr = wifi_qr_text(identity)
    return (
        f"VCI box {device}\n"
        f"Device id:          {device}\n"
        f"Wi-Fi name (SSID):  {identity.ssid}\n"
        f"Wi-Fi key (WPA2):   {identity.passphrase}\n"
        f"Page:               http://{identity.hostname}.local/  (or http://{WIFI_ADDRESS}/)\n"
        f"Pairing code:       {pairing_code}  (the label code: also claims the box)\n"
        f"Wi-Fi QR code text: {qr}\n"
    )


def _qr_escape(text: str) -> str:
    return re.sub(r"([\\;,:\"])", r"\\\1", text)


def provision(state_dir: Path, device: str, pairing_code: str, country: str = "") -> WifiIdentity:
    """Everything first boot makes (idempotent: what exists is kept, the files made from it are
    written again): the box's identity (device id, private key, CSR: firmware_py/identity.py),
    the Wi-Fi's name and key, hostapd's configuration and the label sheet (text and HTML)."""
    from firmware_py.gateway.label import label_html
    from firmware_py.identity import make_identity

    make_identity(state_dir, device)
    identity = wifi_identity(state_dir, device)
    _write_private(state_dir / "wifi" / "hostapd.conf", hostapd_conf(identity, country))
    _write_private(state_dir / "label.txt", label_sheet(identity, device, pairing_code))
    _write_private(state_dir / "label.html", label_html(identity, device, pairing_code))
    return identity


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) atomically: a power cut leaves the old or the new."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
