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
from babel.messages.pofile import read_po

from firmware_py.i18n import (
    BOX_DOMAIN,
    BOX_LOCALE_DIR,
    LANGUAGES,
    SOURCE,
    Language,
    language,
    negotiate,
    supported,
)

COOKIE = "vci_lang"


def request_language(request: web.Request) -> Language:
    """The reader's language for this request."""
    code = supported(request.query.get("lang")) or supported(request.cookies.get(COOKIE))
    return language(code or negotiate(request.headers.get("Accept-Language")))


@functools.cache
def _catalogue(code: str) -> bytes:
    """The translations of ``code`` as JSON (fuzzy and empty entries left out, as on the server)."""
    messages: dict[str, object] = {}
    path = BOX_LOCALE_DIR / code / "LC_MESSAGES" / f"{BOX_DOMAIN}.po"
    if code != SOURCE and path.is_file():
        with path.open("rb") as po:
            for m in read_po(po, locale=code, domain=BOX_DOMAIN):
                if not m.id or m.fuzzy or not m.string:
                    continue
                if isinstance(m.id, str):
                    messages[m.id] = m.string
                elif all(m.string):  # plural: the forms, picked in the browser by Intl.PluralRules
                    messages[m.id[0]] = list(m.string)
    return json.dumps({"language": code, "messages": messages}, ensure_ascii=False).encode()


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
