"""``VehicleSession``: a connected vehicle for the UDS layer - its link, the catalogue, and one
:class:`EcuSession` per ECU, opened on first use. Synchronous, used from the gateway's vehicle
worker; parallel programming runs one thread per ECU (each on its own session, each session
locked), so opening sessions is locked too."""

from __future__ import annotations

import threading
from pathlib import Path

from firmware_py.config import TransportConfig, UdsConfig
from firmware_py.transport import VehicleLink, open_link
from firmware_py.uds.catalog import Catalog, EcuInfo, load_catalog
from firmware_py.uds.ecu import EcuSession
from firmware_py.uds.security import SecurityProvider

#: for first contact with ECUs that may not be fitted: answer quickly or count as absent
PROBE_TIMING = UdsConfig(p2=0.3, p2_star=5.0)


class VehicleSession:
    def __init__(
        self, link: VehicleLink, *, catalog: Catalog | None = None, timing: UdsConfig = UdsConfig()
    ) -> None:
        self.link = link
        self.catalog = catalog or load_catalog()
        self.timing = timing
        self.security = SecurityProvider(
            {e.address: e.security for e in self.catalog.ecus if e.security}
        )
        self._sessions: dict[int, EcuSession] = {}
        self._sessions_lock = threading.RLock()

    @classmethod
    def open(
        cls,
        transport: TransportConfig,
        kind: str,
        *,
        timing: UdsConfig = UdsConfig(),
        catalog: Catalog | None = None,
        trace_path: Path | None = None,
    ) -> VehicleSession:
        """Open the link from configuration; with ``trace_path`` its traffic goes to a pcap file."""
        catalog = catalog or load_catalog()
        return cls(
            open_link(transport, kind, normal_ids=catalog.normal_ids(), trace_path=trace_path),
            catalog=catalog,
            timing=timing,
        )

    @property
    def kind(self) -> str:
        return self.link.kind

    @property
    def connects(self) -> int:
        """How often the link connected (a DoIP link reconnects after the car dropped it - maybe
        to another car: the gateway reads the VIN again when this changes)."""
        return int(getattr(self.link, "connects", 1))

    def ecu(self, which: str | int | EcuInfo, *, timing: UdsConfig | None = None) -> EcuSession:
        info = which if isinstance(which, EcuInfo) else self.catalog.find(which)
        with self._sessions_lock:
            return self._session(info, timing)

    def _session(self, info: EcuInfo, timing: UdsConfig | None) -> EcuSession:
        session = self._sessions.get(info.address)
        if session is None or (timing is not None and timing != session.timing):
            if session is not None:
                session.close()
            session = EcuSession(
                self.link.ecu_connection(info.address),
                name=info.name,
                address=info.address,
                timing=timing or self.timing,
                security=self.security,
            )
            self._sessions[info.address] = session.open()
        return session

    def supply_voltage(self) -> float:
        """The vehicle's supply voltage in volts, as its central gateway measures it (DID 0xDAD0).
        A box with its own ADC on OBD pin 16 uses ``firmware_py.hw.battery`` instead."""
        gateway = self.catalog.ecus[0]
        return float(self.ecu(gateway).read_dids(0xDAD0)[0xDAD0])

    def close(self) -> None:
        for session in self._sessions.values():
            try:
                session.close()
            except Exception:  # noqa: BLE001 - closing must go on for the others
                pass
        self._sessions.clear()
        self.link.close()
