"""Security access (ISO 14229-1 0x27): pluggable seed/key algorithms.

An algorithm is a function ``key(seed: bytes, level: int, ecu_address: int) -> bytes``
registered by name; the catalogue names the algorithm per ECU. Manufacturer algorithms are not
part of this repository: a deployment registers its own (``register_algorithm``) from a plugin.
"""

from __future__ import annotations

from collections.abc import Callable

from firmware_py.errors import SecurityAccessError
from firmware_py.i18n import N_

KeyFunction = Callable[[bytes, int, int], bytes]
_ALGORITHMS: dict[str, KeyFunction] = {}


def register_algorithm(name: str, func: KeyFunction) -> None:
    _ALGORITHMS[name] = func


def algorithm(name: str) -> KeyFunction:
    try:
        return _ALGORITHMS[name]
    except KeyError:
        raise SecurityAccessError(
            N_("no seed/key algorithm {name} is installed"),
            values={"name": repr(name)},
            hint=N_("Install the manufacturer's security plugin for this ECU"),
        ) from None


def vci_sim_lcg32(seed: bytes, level: int, ecu_address: int) -> bytes:
    """SIMULATOR TEST MATERIAL: the simulated vehicle's algorithm, not a manufacturer's.
    key = ((seed ^ mask) * 0x41C64E6D + 0x3039) mod 2**32, mask = 0x5A5A0000 | address << 8 | level."""
    if len(seed) != 4:
        raise SecurityAccessError(
            N_("vci-sim-lcg32 needs a 4-byte seed, got {n} bytes"), values={"n": len(seed)}
        )
    mask = 0x5A5A0000 | (ecu_address << 8) | level
    key = (((int.from_bytes(seed, "big") ^ mask) * 0x41C64E6D) + 0x3039) & 0xFFFFFFFF
    return key.to_bytes(4, "big")


register_algorithm("vci-sim-lcg32", vci_sim_lcg32)


class SecurityProvider:
    """Which algorithm answers which ECU's seeds."""

    def __init__(self, per_ecu: dict[int, str]) -> None:
        self.per_ecu = dict(per_ecu)

    def key(self, ecu_address: int, level: int, seed: bytes) -> bytes:
        name = self.per_ecu.get(ecu_address)
        if name is None:
            raise SecurityAccessError(
                N_("no seed/key algorithm is configured for ECU 0x{ecu_address}"),
                values={"ecu_address": format(ecu_address, "02X")},
                hint=N_("Add 'security = ...' for it in the ECU catalogue"),
            )
        return algorithm(name)(seed, level, ecu_address)
