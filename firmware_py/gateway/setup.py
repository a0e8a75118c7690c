"""Assembling the gateway's parts from configuration (shared by the CLI and the daemon)."""

from __future__ import annotations

from firmware_py.config import Config, device_id
from firmware_py.gateway.entitlements import Entitlements
from firmware_py.gateway.store import Store
from firmware_py.gateway.trusted_time import TrustedClock
from firmware_py.i18n import N_
from firmware_py.keys import load_public_keys


def open_entitlements(cfg: Config, store: Store | None = None) -> Entitlements:
    store = store or Store(cfg.storage.state_dir)
    clock = TrustedClock(store)
    return Entitlements(
        store, load_public_keys(cfg.security.portal_keys_dir), device_id(cfg), clock
    )


def entitlement_check(cfg: Config) -> Entitlements | None:
    """The runner's entitlement check, or None when tickets are switched off."""
    if cfg.security.tickets == "off":
        return None
    if cfg.security.tickets != "required":
        from firmware_py.errors import ConfigError

        raise ConfigError(
            N_("[security] tickets must be 'required' or 'off', not {tickets}"),
            values={"tickets": repr(cfg.security.tickets)},
        )
    return open_entitlements(cfg)
