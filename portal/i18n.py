"""The portal's languages: its catalogue (portal/locale/<lang>/LC_MESSAGES/portal.po, which falls
back to the box's for the texts both show, e.g. the error hints of firmware_py/errors.py) ; a page
request's language is firmware_py/i18n.py's ``chosen`` (portal/web/guard.py ``lang``).
docs/translating.md."""

from __future__ import annotations

from pathlib import Path

from firmware_py.i18n import Language, language

PORTAL_LOCALE_DIR = Path(__file__).resolve().parent / "locale"
PORTAL_DOMAIN = "portal"


def portal_language(code: str | None) -> Language:
    """``code``'s language (English for anything we do not have) in the portal's catalogue."""
    return language(code, directory=PORTAL_LOCALE_DIR, domain=PORTAL_DOMAIN)
