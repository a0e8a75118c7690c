"""The limit values' schema (firmware_py/reports/emission_limits.py), the one check the portal
runs before it publishes and the box runs before it keeps: the shipped sample passes, and each
kind of mistake is named with where it is."""

from __future__ import annotations

from importlib import resources

import pytest

from firmware_py.errors import ConfigError
from firmware_py.reports.emission_limits import parse_limits, version_key

SAMPLE = (resources.files("firmware_py.reports") / "emission_limits_sample.toml").read_text()
GOOD = 'source = "portal"\nversion = "2026.12"\n[[engine]]\ntype_codes = ["JA71"]\n'
LIMIT = 'limit = [{ name = "co", text = "CO", max = 0.3 }]\n'


def test_the_sample_passes_but_is_not_publishable() -> None:
    assert len(parse_limits(SAMPLE, "sample").engines) == 3
    with pytest.raises(ConfigError, match="the portal publishes only source"):
        parse_limits(SAMPLE, "sample", published=True)
    assert parse_limits(GOOD + LIMIT, "f", published=True).version == "2026.12"
    both = GOOD + 'limit = [{ name = "co", text = { en = "CO", de = "CO-Gehalt" }, max = 0.3 }]\n'
    assert (
        parse_limits(both, "f", published=True).engines[0]["limit"][0]["text"]["de"] == "CO-Gehalt"
    )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("source = ", "not valid TOML"),
        (GOOD, "[[engine]] 1 (JA71): limit is missing"),
        (GOOD + 'limit = [{ name = "co", text = "CO" }]\n', "limit 'co': has neither min nor max"),
        (
            GOOD + 'limit = [{ name = "co", text = "CO", min = 2, max = 1 }]\n',
            "min 2 is above max 1",
        ),
        (GOOD + LIMIT + 'ignition = "steam"\n', "ignition is 'steam'"),
        (GOOD + LIMIT + GOOD.split("\n", 2)[2] + LIMIT, "type code JA71 is also in [[engine]] 1"),
        (GOOD.replace("2026.12", "december") + LIMIT, "version 'december' is not numbers"),
        ("colour = 1\n" + GOOD + LIMIT, "unknown top-level key(s) colour"),
        ('source = "portal"\nversion = "1"\n', "there is no [[engine]] table"),
        (GOOD + 'limit = [{ name = "co", text = { de = "CO" }, max = 1 }]\n', "text is missing"),
        (GOOD + 'limit = [{ name = "co", text = { en = "CO", de = 1 }, max = 1 }]\n', "not a text"),
    ],
)
def test_mistakes_are_named(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_limits(text, "limits.toml", published=True)
    assert named in str(err.value) and "limits.toml" in str(err.value)


def test_versions_compare_as_numbers() -> None:
    assert version_key("2026.12") > version_key("2026.9")  # type: ignore[operator]
    assert version_key("2026-11") is None  # a hand-placed file's: not comparable
