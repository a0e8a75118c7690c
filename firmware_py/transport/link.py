"""One kind of per-ECU connection for the UDS layer, whatever the wire."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from udsoncan.connections import BaseConnection

from firmware_py.config import TransportConfig
from firmware_py.transport.can_bus import open_can_bus
from firmware_py.transport.doip_link import open_doip_link
from firmware_py.transport.enet import choose_protocol
from firmware_py.transport.hsfz_link import open_hsfz_link
from firmware_py.transport.isotp_link import open_can_link


class VehicleLink(Protocol):
    """A connected vehicle: ``ecu_connection(address)`` gives a udsoncan connection to one ECU."""

    kind: str
    description: str

    def ecu_connection(self, address: int) -> BaseConnection: ...

    def close(self) -> None: ...


def open_link(
    cfg: TransportConfig,
    kind: str,
    *,
    normal_ids: Mapping[int, tuple[int, int]] | None = None,
    trace_path: Path | None = None,
) -> VehicleLink:
    """Open the vehicle link named by ``kind`` from configuration: ``doip``, ``hsfz``, ``can``, or
    ``enet`` (the protocol ``[transport] enet`` names; ``auto`` asks both and uses what answers).
    With ``trace_path`` its traffic is written there as pcap (:mod:`firmware_py.transport.trace`)."""
    if kind == "enet":
        kind = choose_protocol(
            cfg.enet,
            cfg.doip_host,
            doip_port=cfg.doip_port,
            hsfz_control_port=cfg.hsfz_control_port,
            doip_protocol_version=cfg.doip_protocol_version,
        )
    if kind == "hsfz":
        return open_hsfz_link(
            cfg.doip_host,
            cfg.hsfz_port,
            tester_address=cfg.hsfz_tester_address,
            trace_path=trace_path,
            control_port=cfg.hsfz_control_port,
        )
    if kind == "doip":
        return open_doip_link(
            cfg.doip_host,
            cfg.doip_port,
            tester_address=cfg.tester_address,
            trace_path=trace_path,
            protocol_version=cfg.doip_protocol_version,
        )
    if kind == "can":
        bus = open_can_bus(cfg.can_interface, cfg.can_channel, cfg.can_bitrate)
        return open_can_link(
            bus,
            addressing=cfg.can_addressing,
            normal_ids=normal_ids,
            st_min=cfg.st_min,
            block_size=cfg.block_size,
            owns_bus=True,
            trace_path=trace_path,
            isotp_stack=cfg.isotp_stack,
        )
    raise ValueError(f"transport must be 'enet', 'doip', 'hsfz' or 'can', not {kind!r}")
