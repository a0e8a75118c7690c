"""The portal's languages: its catalogue (portal/locale/<lang>/LC_MESSAGES/portal.po, which falls
back to the box's for the texts both show, e.g. the error hints of firmware_py/errors.py) and the
language of a page request: ``?lang=`` (the header's EN / DE links, remembered in the ``vci_lang``
cookie), then that cookie, then the browser's ``Accept-Language``. docs/translating.md."""

from __future__ import annotations

from pathlib import Path

from firmware_py.i18n import Language, language, negotiate, supported

PORTAL_LOCALE_DIR = Path(__file__).resolve().parent / "locale"
PORTAL_DOMAIN = "portal"
COOKIE = "vci_lang"


def portal_language(code: str | None) -> Language:
    """``code``'s language (English for anything we do not have) in the portal's catalogue."""
    return language(code, directory=PORTAL_LOCALE_DIR, domain=PORTAL_DOMAIN)


def chosen(query: str | None, cookie: str | None, accept_language: str | None) -> Language:
    return portal_language(supported(query) or supported(cookie) or negotiate(accept_language))
