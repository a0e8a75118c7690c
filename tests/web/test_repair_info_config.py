"""``[web] repair_info_url``: the portal's repair information pages the tablet links fault codes
and part numbers to (docs/web.md). Only a web address is taken: the page puts it into links."""

from __future__ import annotations

import pytest

from firmware_py.config import load_config
from firmware_py.errors import ConfigError


@pytest.mark.parametrize("url", ["javascript:alert(1)", "portal.example/info", "//evil/info"])
def test_a_repair_info_url_that_is_no_web_address_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="repair_info_url"):
        load_config(env={"VCI_WEB_REPAIR_INFO_URL": url})


def test_a_web_address_is_taken() -> None:
    url = "https://portal.example/info"
    assert load_config(env={"VCI_WEB_REPAIR_INFO_URL": url}).web.repair_info_url == url
    assert load_config(env={}).web.repair_info_url == ""
