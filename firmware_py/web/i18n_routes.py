"""The tablet page's languages: ``GET /i18n/{lang}.json`` is the box's catalogue for the browser
(msgid -> translation, from the same .po file the server uses: firmware_py/i18n.py), and
:func:`request_language` is the language of a request: ``?lang=``, then the ``vci_lang`` cookie the
page's switch sets, then the browser's ``Accept-Language``. docs/translating.md.

The catalogue is open (the pairing page needs it too): it holds the product's texts, no secrets.
"""

from __future__ import annotations

import functools
import json

from aiohttp import web

from firmware_py.i18n import COOKIE, LANGUAGES, Language, chosen, language, messages


def request_language(request: web.Request) -> Language:
    """The reader's language for this request."""
    return language(
        chosen(
            request.query.get("lang"),
            request.cookies.get(COOKIE),
            request.headers.get("Accept-Language"),
        )
    )


@functools.cache
def _catalogue(code: str) -> bytes:
    """The box catalogue's translations of ``code`` as JSON (firmware_py/i18n.py ``messages``)."""
    return json.dumps({"language": code, "messages": messages(code)}, ensure_ascii=False).encode()


async def catalogue(request: web.Request) -> web.Response:
    code = request.match_info["lang"]
    if code not in LANGUAGES:
        raise web.HTTPNotFound(text=f"no language {code!r}; there are: {', '.join(LANGUAGES)}")
    return web.Response(
        body=_catalogue(code),
        content_type="application/json",
        headers={"Cache-Control": "no-cache"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/i18n/{lang}.json", catalogue)
