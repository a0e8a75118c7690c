"""[transport] values the links cannot use are refused when the configuration is loaded (with
what to set), not at the first request to the car."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_py.config import Config, load_config
from firmware_py.errors import ConfigError


def load(tmp_path: Path, **transport: object) -> Config:
    return load_config(tmp_path / "none.toml", env={}, overrides={"transport": transport})


@pytest.fixture
def tmp_config(tmp_path: Path) -> Path:
    (tmp_path / "none.toml").write_text("")
    return tmp_path


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("enet", "icom"),
        ("doip_protocol_version", 0x04),
        ("doip_protocol_version", 0xFF),  # the default version is for identification only
        ("hsfz_tester_address", 0x100),
        ("tester_address", 0x10000),
    ],
)
def test_unusable_transport_values_are_refused_on_load(
    tmp_config: Path, key: str, value: object
) -> None:
    with pytest.raises(ConfigError, match=key) as caught:
        load(tmp_config, **{key: value})
    assert caught.value.hint


@pytest.mark.parametrize(
    "values",
    [
        {"enet": "hsfz", "hsfz_tester_address": 0xF5},
        {"doip_protocol_version": 0x03, "tester_address": 0x0EF4},
        {"doip_protocol_version": 0x01},
    ],
)
def test_usable_transport_values_load(tmp_config: Path, values: dict[str, object]) -> None:
    cfg = load(tmp_config, **values)
    for key, value in values.items():
        assert getattr(cfg.transport, key) == value
