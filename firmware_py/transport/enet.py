"""Which ENET protocol a car speaks: ask DoIP and HSFZ vehicle identification at the same time
and use what answers (docs/enet.md). Newer BMWs answer DoIP, most F- and G-series HSFZ, many
G-series both; when both answer, DoIP is used (the standard protocol, with routing activation and
its NACK codes) unless the configuration says ``enet = "hsfz"``."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from firmware_py.errors import ConfigError, VehicleNotFoundError
from firmware_py.i18n import N_
from firmware_py.transport.doip_link import discover_doip
from firmware_py.transport.hsfz_link import discover_hsfz

log = logging.getLogger(__name__)
ENET_MODES = ("auto", "doip", "hsfz")


@dataclass(frozen=True)
class EnetVehicle:
    """A car that answered identification on one protocol."""

    protocol: str
    """``doip`` or ``hsfz``"""
    host: str
    vin: str
    gateway_address: int

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def discover_enet(
    host: str,
    *,
    doip_port: int = 13400,
    hsfz_control_port: int = 6811,
    timeout: float = 1.0,
    doip_protocol_version: int = 0x02,
) -> list[EnetVehicle]:
    """DoIP and HSFZ identification sent together to ``host`` (unicast, or broadcast for an
    address ending in .255); every answer, DoIP first."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="vci-enet-scan") as pool:
        doip = pool.submit(
            discover_doip, host, doip_port, timeout, protocol_version=doip_protocol_version
        )
        hsfz = pool.submit(discover_hsfz, host, hsfz_control_port, timeout=timeout)
        found = [
            EnetVehicle("doip", a.host, a.vin, a.logical_address) for a in _answers(doip, "DoIP")
        ]
        found += [
            EnetVehicle("hsfz", addr, ident.vin, ident.diag_address)
            for addr, ident in _answers(hsfz, "HSFZ")
        ]
    return found


def _answers(future: Future[Any], what: str) -> list[Any]:
    try:
        return list(future.result())
    except VehicleNotFoundError as err:  # e.g. no route for a broadcast
        log.info("%s identification: %s", what, err)
        return []


def choose_protocol(
    mode: str,
    host: str,
    *,
    doip_port: int,
    hsfz_control_port: int,
    timeout: float = 1.0,
    doip_protocol_version: int = 0x02,
) -> str:
    """The protocol to use for ``mode`` (``auto``, ``doip``, ``hsfz``) with the car at ``host``."""
    if mode not in ENET_MODES:
        raise ConfigError(
            N_("enet must be one of {value}, not {mode}"),
            values={"value": ", ".join(ENET_MODES), "mode": repr(mode)},
            hint=N_("Set [transport] enet or --enet"),
        )
    if mode != "auto":
        return mode
    found = discover_enet(
        host,
        doip_port=doip_port,
        hsfz_control_port=hsfz_control_port,
        timeout=timeout,
        doip_protocol_version=doip_protocol_version,
    )
    if not found:
        raise VehicleNotFoundError(
            N_(
                "no vehicle answered DoIP (UDP {doip_port}) or HSFZ (UDP {hsfz_control_port}) identification at {host}"
            ),
            values={"doip_port": doip_port, "hsfz_control_port": hsfz_control_port, "host": host},
            hint=N_("Check the ENET cable, that the car is awake (ignition on), and the address"),
        )
    return found[0].protocol
