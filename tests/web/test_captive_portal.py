"""The captive portal (docs/appliance.md): on the box's Wi-Fi every name resolves to the box, so a
tablet's connectivity check reaches the page under a foreign name and is sent to the page under
the box's own address; nothing is served under the foreign name (DNS rebinding)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.web.conftest import pair, run, tablet


@pytest.mark.parametrize(
    ("host", "location"),
    [
        ("connectivitycheck.gstatic.com", "http://127.0.0.1/"),  # port 80: nftables -> the page
        ("captive.apple.com:8080", "http://127.0.0.1:8080/"),
    ],
)
@pytest.mark.parametrize("path", ["/generate_204", "/hotspot-detect.html", "/"])
def test_a_connectivity_check_under_a_foreign_name_is_sent_to_the_page(
    server, host: str, location: str, path: str
) -> None:
    async def go(base, pairing, clock):
        async with tablet() as s:
            async with s.get(base + path, headers={"Host": host}, allow_redirects=False) as r:
                assert r.status == 302
                assert r.headers["Location"] == location
                assert "vci" not in (await r.text()).lower()  # not the page under that name
            async with s.head(base + path, headers={"Host": host}, allow_redirects=False) as r:
                assert r.status == 302

    run(server, go)


def test_the_api_and_changes_under_a_foreign_name_stay_refused(server) -> None:
    async def go(base, pairing, clock):
        async with tablet() as s:
            csrf = await pair(s, base, pairing, clock)
            foreign = {"Host": "evil.example"}
            async with s.get(base + "/api/vehicle", headers=foreign, allow_redirects=False) as r:
                assert r.status == 421
            async with s.post(
                base + "/", headers={**foreign, "X-CSRF-Token": csrf}, allow_redirects=False
            ) as r:
                assert r.status == 421
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                async with s.ws_connect(base + "/api/events", headers=foreign):
                    pass
            assert err.value.status == 421

    run(server, go)
