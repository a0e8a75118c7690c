"""Configuration: frozen dataclasses, loaded from one TOML file, overridable by ``VCI_*``
environment variables and then by CLI flags.

Every field has a docstring-style comment; ``vci config`` (later) prints them. A section
``[transport]`` with field ``doip_port`` is overridden by ``VCI_TRANSPORT_DOIP_PORT``.
Times are seconds as floats (ISO names: p2, p2_star, s3).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_py.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/vci/vci.toml")
ADMIN_SOCKET = "admin.sock"
"""the running gateway's admin socket in the state directory (vci pair, vci bridge)"""


@dataclass(frozen=True)
class TransportConfig:
    """How the box reaches the vehicle."""

    enet: str = "auto"
    """ENET protocol: ``auto`` (ask DoIP and HSFZ identification together and use what answers;
    DoIP when both do), ``doip`` (ISO 13400-2) or ``hsfz`` (BMW F- and most G-series)."""
    doip_host: str = "127.0.0.1"
    """Address of the vehicle's ENET gateway (DoIP and HSFZ alike), or the address identification
    is sent to. On the box: the ENET link's broadcast (255.255.255.255); here: loopback."""
    doip_port: int = 13400
    """UDP/TCP port of DoIP (ISO 13400-2 UDP_DISCOVERY / TCP_DATA)."""
    tester_address: int = 0x0E80
    """Our DoIP logical source address (0x0E00-0x0FFF are external test equipment; BMW's own
    testers use 0x0EF3 - keep that free for a workshop tester on the ENET bridge)."""
    doip_protocol_version: int = 0x02
    """DoIP protocol version we send: 0x02 (ISO 13400-2:2012, what the cars of that era and the
    simulator take) or 0x03 (ISO 13400-2:2019; BMW's testers send 0x03 to newer cars); 0x01
    (the 2010 edition) is taken too."""
    hsfz_port: int = 6801
    """TCP port of HSFZ diagnosis."""
    hsfz_control_port: int = 6811
    """UDP port of HSFZ vehicle identification."""
    hsfz_tester_address: int = 0xF4
    """Our HSFZ source address (one byte; BMW testers use 0xF4)."""
    can_interface: str = "vci_loopback"
    """python-can interface: ``socketcan`` (can0 on the Pi), ``slcan`` (serial adapter),
    ``virtual`` (in-process), ``vci_loopback`` (UDP multicast confined to 127.0.0.1)."""
    can_channel: str = "239.74.163.2:43113"
    """python-can channel for that interface (``can0``, ``/dev/ttyACM0@500000``, a group:port)."""
    can_bitrate: int = 500_000
    """CAN bit rate in bit/s (used by real adapters)."""
    can_addressing: str = "bmw"
    """``bmw``: extended addressing, first data byte = target, tester 0xF1;
    ``normal``: 11-bit request/response identifier pairs (0x7E0/0x7E8 ...)."""
    st_min: float = 0.0
    """ISO-TP separation time we ask of the sender, seconds."""
    block_size: int = 0
    """ISO-TP block size we ask of the sender (0: no further flow control)."""
    isotp_stack: str = "auto"
    """Which ISO-TP implementation carries CAN messages: ``kernel`` (Linux's CAN_ISOTP sockets,
    module can-isotp, on a ``socketcan`` interface), ``user`` (can-isotp's user-space stack, any
    python-can bus) or ``auto`` (the kernel's when the interface is socketcan and the kernel
    has it, the user-space stack otherwise)."""

    def __post_init__(self) -> None:
        if self.isotp_stack not in ("auto", "kernel", "user"):
            raise ConfigError(
                f"transport: isotp_stack must be auto, kernel or user, not {self.isotp_stack!r}",
                hint="Set [transport] isotp_stack or --isotp-stack to one of them",
            )
        if self.enet not in ("auto", "doip", "hsfz"):
            raise ConfigError(
                f"transport: enet must be auto, doip or hsfz, not {self.enet!r}",
                hint="Set [transport] enet or --enet to one of them",
            )
        if self.doip_protocol_version not in (0x01, 0x02, 0x03):
            raise ConfigError(
                f"transport: doip_protocol_version 0x{self.doip_protocol_version:02X} is no DoIP "
                "protocol version",
                hint="Set [transport] doip_protocol_version to 0x02 (2012) or 0x03 (2019)",
            )
        if not 0 <= self.tester_address <= 0xFFFF:
            raise ConfigError(
                f"transport: tester_address 0x{self.tester_address:X} is not a DoIP address",
                hint="Set [transport] tester_address or --tester-address to 0x0E00-0x0FFF",
            )
        if not 0 <= self.hsfz_tester_address <= 0xFF:
            raise ConfigError(
                f"transport: hsfz_tester_address 0x{self.hsfz_tester_address:X} is not one byte",
                hint="Set [transport] hsfz_tester_address to 0xF4 (or another byte)",
            )


@dataclass(frozen=True)
class UdsConfig:
    """UDS timing (ISO 14229-2)."""

    p2: float = 1.0
    """Time to wait for the first response (the ECU may announce a shorter one)."""
    p2_star: float = 5.0
    """Time to wait after a response pending (NRC 0x78)."""
    s3: float = 5.0
    """Session timeout of the ECU; tester present is sent well within it."""
    tester_present_interval: float = 2.0
    """Interval of our 0x3E 0x80 while a non-default session is open."""
    request_deadline: float = 30.0
    """Longest one request may take in all, every "response pending" (NRC 0x78) included; then
    the ECU counts as not answering. ISO 14229-2 bounds each wait (P2, P2*) but not how often an
    ECU may say "pending"; 30 s is six P2* periods, more than any diagnostic service needs."""
    long_request_deadline: float = 120.0
    """The same for the requests that program or check memory and for routines (0x31, 0x34,
    0x36, 0x37): erasing a large flash takes a real ECU up to a minute or two."""

    def __post_init__(self) -> None:
        if not 0 < self.p2 < min(self.request_deadline, self.long_request_deadline):
            raise ConfigError(
                "uds: request_deadline and long_request_deadline must be longer than p2 "
                f"(have {self.request_deadline}, {self.long_request_deadline}, p2 {self.p2})"
            )


@dataclass(frozen=True)
class StorageConfig:
    """Where the box keeps what it must not lose."""

    state_dir: Path = Path("/var/lib/vci")
    """SQLite database, traces, paired tablets, trusted time."""
    traces_max_bytes: int = 256 * 1024 * 1024
    """Total size the vehicle link's traces may take; the oldest are deleted first."""
    min_free_bytes: int = 16 * 1024 * 1024
    """Free space the state disk must have before a job that changes the car starts (its record
    for the service history must be kept); below it such jobs are refused."""
    max_package_bytes: int = 256 * 1024 * 1024
    """Largest flash package the box accepts (upload, programming job)."""
    info_cache_bytes: int = 32 * 1024 * 1024
    """Size the cached repair information of identified cars may take; the car fetched longest
    ago is evicted first."""


@dataclass(frozen=True)
class PrivacyConfig:
    """How long the box keeps what concerns people: a car (its VIN), a customer, a technician
    (docs/data-protection.md). Periods in days; 0 keeps for no set time (only the size bounds
    of [storage] and the tables' row limits apply). Enforced at the gateway's start and every
    retention_interval seconds; nothing owed to the portal (the outbox: the service booklet
    entries, results, ticket use), no running job's trace and no resumable programming journal
    is deleted by it."""

    traces_days: float = 30.0
    """pcap traces of the vehicle link and the ENET bridge: kept for a complaint about the last
    jobs (a help-desk request attaches them at once); the size bound traces_max_bytes applies
    too"""
    job_log_days: float = 90.0
    """the job journal (session log: which job, who, on which VIN) and the list of booklet entries
    already sent to the portal; also the finished jobs the running gateway holds in memory"""
    reports_days: float = 90.0
    """vehicle test reports kept as JSON under reports/ (the portal keeps its copy)"""
    helpdesk_days: float = 180.0
    """help-desk requests (question, contact, VIN, answer) the portal has received; one still
    waiting for the portal is kept until it is delivered"""
    battery_log_days: float = 90.0
    """the battery voltage history (a help-desk request's attachment)"""
    coding_backups_days: float = 365.0
    """previous codings kept for ``coding restore`` (a coding complaint within the workshop's
    one-year liability for its work)"""
    flash_journal_days: float = 90.0
    """rows of the programming journal of jobs that ended (verified or refused); an interrupted
    or stopped one is kept until it is resumed"""
    tablets_days: float = 180.0
    """paired tablets (the name given when pairing) not seen for this long: their session ended
    after 90 days unseen, so they must pair again anyway"""
    pairing_failures_days: float = 30.0
    """wrong pairing codes (time, the client's address on the box's Wi-Fi)"""
    retention_interval: float = 3600.0
    """seconds between two runs of the retention job in the running gateway"""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise ConfigError(
                    f"privacy.{f.name} must not be negative (have {value})",
                    hint="Set it to a number of days, or 0 for no time limit",
                )
        if self.retention_interval < 1.0:
            raise ConfigError("privacy.retention_interval must be at least 1 second")


@dataclass(frozen=True)
class SecurityConfig:
    """Tickets and the portal's keys."""

    portal_keys_dir: Path = Path("/etc/vci/portal-keys")
    """Directory of the portal's Ed25519 public keys, one ``<key id>.pub`` PEM file each."""
    publisher_keys_dir: Path = Path("/etc/vci/publisher-keys")
    """Directory of the flash-package publishers' Ed25519 public keys (``<key id>.pub``)."""
    tickets: str = "required"
    """``required``: paid jobs need a ticket (the product); ``off``: every job is allowed, for a
    box that a workshop runs without the portal (documented in docs/tickets.md)."""


@dataclass(frozen=True)
class DeviceConfig:
    """This box."""

    id: str = ""
    """Device id that tickets, the Wi-Fi name and the broker certificate are bound to; empty:
    /etc/vci/device-id, else the one first boot kept in the state directory, else the Raspberry
    Pi's serial number (``pi-...``), else a short form of /etc/machine-id (``vci-...``)."""


@dataclass(frozen=True)
class HardwareConfig:
    """The box's own hardware (firmware_py/hw/)."""

    gpio: bool = False
    """the box's own hardware is fitted (hardware/README.md): status LEDs, ENET activation line,
    battery ADC and pairing button on the pinout's GPIOs; false (a PC): none of them, and the
    pairing button only if pairing_button_pin is set (else vci pair --approve)"""
    pinout: str = ""
    """the pinout file; empty: the one shipped with the firmware (hardware/pinout.toml)"""
    pairing_button_pin: str = ""
    """GPIO of the pairing button (e.g. GPIO17), overriding the pinout's; empty: the pinout's
    when gpio is on, else no button"""
    adc: bool = True
    """with gpio: the battery ADC (MCP3208) is fitted, so the box measures the battery itself"""
    enet_hold: float = 300.0
    """seconds the ENET activation line stays on after the last job on an ENET link"""
    battery_care_volts: float = 12.2
    """battery care: below this (the box's own measurement) with no job, the box shuts down;
    0 turns battery care off"""
    battery_care_after: float = 1800.0
    """battery care: seconds below battery_care_volts, with no job, before the box shuts down"""
    shutdown_command: str = "systemctl poweroff"
    """what battery care runs to shut the box down (split like a shell command line)"""


@dataclass(frozen=True)
class WebConfig:
    """The tablet's local page (docs/web.md): what one client on the Wi-Fi may take of it."""

    header_timeout: float = 10.0
    """Seconds a client has to send a request's headers (also the idle time of a kept-alive
    connection); then the box closes the connection."""
    body_timeout: float = 20.0
    """Seconds a client has to send a JSON body, and each MiB of a package upload."""
    max_connections: int = 256
    """Open connections to the page in total; more are closed at once."""
    max_connections_per_client: int = 32
    """Open connections from one client address."""
    repair_info_url: str = ""
    """The portal's repair information pages (``https://portal.example/info``): the tablet
    links each fault code to ``<url>/dtc?code=...&vin=...`` there (the workshop's portal login
    and ticket decide what it shows); empty: no links."""

    def __post_init__(self) -> None:
        if self.repair_info_url and not self.repair_info_url.startswith(("https://", "http://")):
            raise ConfigError(
                f"[web] repair_info_url {self.repair_info_url!r} is not a web address",
                hint="Give the portal's pages as https://PORTAL/info, or leave it empty",
            )

    allowed_hosts: str = ""
    """Extra host names the page answers to (comma-separated), besides the address a client
    connected to, localhost and the box's mDNS name (``<hostname>.local``)."""


@dataclass(frozen=True)
class CloudConfig:
    """The link to the portal (docs/remote-protocol.md): MQTT 5 to its broker, or a WebSocket to
    its bridge; off while broker_host and ws_url are empty."""

    broker_host: str = ""
    """broker address; empty: no portal link"""
    broker_port: int = 8883
    """MQTT over TLS"""
    ca_file: Path = Path("/etc/vci/mqtt/ca.pem")
    """the portal's CA: it signed the broker's, the bridge's and the enrolment server's
    certificates (the box trusts no other for them)"""
    cert_file: Path = Path("")
    """this box's client certificate (common name = device id); empty: the one enrolment got,
    ``<state_dir>/identity/box.pem``"""
    key_file: Path = Path("")
    """its private key; empty: the one first boot made, ``<state_dir>/identity/box.key``"""
    enrol_url: str = ""
    """the portal's enrolment endpoint (``https://portal.example/vci/enrol``): while the box has
    no certificate it sends its CSR there and asks again every enrol_interval seconds until the
    workshop has claimed it (docs/claiming.md); empty: no enrolment (certificate put in place by
    hand)"""
    enrol_interval: float = 30.0
    """seconds between enrolment requests while the box waits to be claimed"""
    transport: str = "auto"
    """``mqtt``; ``websocket`` (to ws_url); ``auto``: MQTT, and the WebSocket to ws_url when the
    broker has not answered within fallback_after (a network that blocks the MQTT port); the box
    then stays on the WebSocket until the gateway restarts"""
    ws_url: str = ""
    """the portal's WebSocket bridge (``wss://portal.example/vci/box``); the same TLS files"""
    fallback_after: float = 15.0
    """seconds ``auto`` waits for the broker before it takes the WebSocket"""

    def __post_init__(self) -> None:
        if self.transport not in ("auto", "mqtt", "websocket"):
            raise ConfigError(
                f"cloud.transport: {self.transport!r} is not one of auto, mqtt, websocket"
            )
        if self.transport == "websocket" and not self.ws_url:
            raise ConfigError("cloud.transport is websocket but cloud.ws_url is empty")
        if self.enrol_url and not self.enrol_url.startswith("https://"):
            raise ConfigError(
                f"cloud.enrol_url {self.enrol_url!r} is not an https:// address",
                hint="Enrolment goes over TLS to the portal only: give https://HOST[:PORT]/vci/enrol",
            )
        if not 1.0 <= self.enrol_interval <= 86400.0:
            raise ConfigError("cloud.enrol_interval must be 1 to 86400 seconds")

    @property
    def enabled(self) -> bool:
        return bool(self.broker_host or (self.ws_url and self.transport != "mqtt"))


@dataclass(frozen=True)
class BridgeConfig:
    """The ENET bridge: the car's ENET lent to the workshop's own tester on the Wi-Fi side
    (docs/enet.md). Ports 0 take free ones (tests). The car's side is [transport]: the car
    answers identification at doip_host, and is reached at doip_port and hsfz_port."""

    listen_host: str = "127.0.0.1"
    """address the bridge listens on: the box's Wi-Fi address (never the car's side)"""
    hsfz_port: int = 6801
    """HSFZ diagnosis (TCP) offered to the tester"""
    hsfz_control_port: int = 6811
    """HSFZ identification (UDP) and control (TCP) offered to the tester"""
    doip_port: int = 13400
    """DoIP (TCP and UDP) offered to the tester"""
    timeout: float = 3600.0
    """seconds a session stays open unless given otherwise"""
    max_timeout: float = 12 * 3600.0
    """the longest session that can be asked for, in seconds"""


@dataclass(frozen=True)
class UpdateConfig:
    """Software updates of the box offered by the portal (docs/update.md)."""

    compatible: str = ""
    """the hardware the box's bundles must be for; empty: ``compatible=`` of RAUC's
    /etc/rauc/system.conf; neither (a PC): the box takes no update offers"""
    release_file: Path = Path("/etc/vci/release")
    """the installed release version (image/build writes it); missing: the package's version"""
    request_file: Path = Path("/run/vci/update-request")
    """where the gateway names a downloaded, verified bundle for the installer (root, through
    vci-update.path); the gateway itself cannot install or reboot"""
    stall_timeout: float = 60.0
    """seconds without a byte before a download attempt is given up (it goes on later)"""


@dataclass(frozen=True)
class Config:
    transport: TransportConfig = field(default_factory=TransportConfig)
    uds: UdsConfig = field(default_factory=UdsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    cloud: CloudConfig = field(default_factory=CloudConfig)
    hw: HardwareConfig = field(default_factory=HardwareConfig)
    web: WebConfig = field(default_factory=WebConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)


def device_id(cfg: Config) -> str:
    """The id tickets, the Wi-Fi name and the broker certificate are bound to: ``[device] id``,
    else /etc/vci/device-id, else the one first boot kept in the state directory
    (``identity/device-id``), else what the hardware gives (the Raspberry Pi's serial
    ``pi-...``, a short form of /etc/machine-id ``vci-...``), else the host name
    (firmware_py/identity.py)."""
    from firmware_py.identity import derived_device_id, stored_device_id

    if cfg.device.id:
        return cfg.device.id
    try:
        text = Path("/etc/vci/device-id").read_text().strip()
        if text:
            return text
    except OSError:
        pass
    found = stored_device_id(cfg.storage.state_dir) or derived_device_id()
    if found:
        return found
    import socket

    return socket.gethostname()


def _coerce(value: Any, kind: Any, where: str) -> Any:
    try:
        if kind is bool:
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if kind is int:
            return int(value, 0) if isinstance(value, str) else int(value)
        if kind is float:
            return float(value)
        if kind is Path:
            return Path(value)
        return str(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {value!r} is not a valid {kind.__name__}") from err


def load_config(
    path: Path | None = None,
    env: typing.Mapping[str, str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Config:
    """Load the configuration: defaults < TOML file < ``VCI_*`` environment < ``overrides``.

    ``path`` defaults to ``$VCI_CONFIG`` or /etc/vci/vci.toml; a missing default file is fine,
    a missing explicitly named file is an error.
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    explicit = path is not None or "VCI_CONFIG" in env
    path = path or Path(env.get("VCI_CONFIG", str(DEFAULT_CONFIG_PATH)))
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, OSError) as err:
            raise ConfigError(f"cannot read configuration {path}: {err}") from err
    elif explicit:
        raise ConfigError(f"configuration file {path} does not exist")

    sections = {}
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        hints = typing.get_type_hints(cls)
        given = dict(data.get(section.name, {}))
        unknown = set(given) - set(hints)
        if unknown:
            raise ConfigError(f"[{section.name}] has unknown keys: {', '.join(sorted(unknown))}")
        for name in hints:
            env_key = f"VCI_{section.name}_{name}".upper()
            if env_key in env:
                given[name] = env[env_key]
        given.update((overrides or {}).get(section.name, {}))
        values = {k: _coerce(v, hints[k], f"{section.name}.{k}") for k, v in given.items()}
        sections[section.name] = cls(**values)
    cloud, state_dir = sections["cloud"], sections["storage"].state_dir
    sections["cloud"] = dataclasses.replace(
        cloud,
        cert_file=cloud.cert_file
        if cloud.cert_file != Path("")
        else identity_file(state_dir, "box.pem"),
        key_file=cloud.key_file
        if cloud.key_file != Path("")
        else identity_file(state_dir, "box.key"),
    )
    return Config(**sections)


def identity_file(state_dir: Path, name: str) -> Path:
    """A file of the box's identity in the state directory (firmware_py/identity.py)."""
    return state_dir / "identity" / name
