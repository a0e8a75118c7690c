"""The box's languages on the web: the catalogue for the page (open, like the pairing page), the
language of a request (``?lang=``, the ``vci_lang`` cookie, Accept-Language)."""

from __future__ import annotations

from tests.web.conftest import run, tablet


def test_the_catalogue_is_served_open_and_only_for_our_languages(server) -> None:
    async def go(base, pairing, clock):
        async with tablet() as s:  # not paired: the catalogue is open
            async with s.get(base + "/i18n/de.json") as r:
                assert r.status == 200
                body = await r.json()
            assert body["language"] == "de"
            assert body["messages"]["Fault memory"] == "Fehlerspeicher"
            assert body["messages"]["Supply voltage too low: connect a battery charger"].startswith(
                "Versorgungsspannung zu niedrig"
            )
            async with s.get(base + "/i18n/en.json") as r:
                assert (await r.json())["messages"] == {}  # English is the source
            for other in ("fr", "..%2F..%2Fetc", "de.po"):
                async with s.get(base + f"/i18n/{other}.json") as r:
                    assert r.status == 404, other
            async with s.get(base + "/api/jobs") as r:  # everything else stays closed
                assert r.status == 401

    run(server, go)


def test_the_language_of_a_request() -> None:
    from aiohttp.test_utils import make_mocked_request

    from firmware_py.web.i18n_routes import request_language

    def lang(path: str = "/", **headers: str) -> str:
        return request_language(make_mocked_request("GET", path, headers=headers)).code

    assert lang(**{"Accept-Language": "de-DE,de;q=0.9"}) == "de"
    assert lang("/?lang=en", **{"Accept-Language": "de-DE"}) == "en"  # asked for wins
    assert lang(**{"Accept-Language": "de", "Cookie": "vci_lang=en"}) == "en"  # the switch
    assert lang("/?lang=xx", **{"Cookie": "vci_lang=zz", "Accept-Language": "fr"}) == "en"
