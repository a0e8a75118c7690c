"""Languages: the gettext catalogues of the box and the portal, and formats per locale (Babel).

English is the source language: every user-facing text is written in English in the code, marked
for extraction, and looked up in a catalogue at the moment it is shown, in the language of the
person who reads it (the tablet's, the portal user's, the document's). The CLI stays English
unless its locale (``LC_ALL`` / ``LC_MESSAGES`` / ``LANG``) names a language we have.

Catalogues are the ``.po`` files in the repository (``<package>/locale/<lang>/LC_MESSAGES/
<domain>.po``), read with Babel at first use and kept: there is no compiled ``.mo`` step, so an
editable install, the wheel and the appliance image run from the files translators edit
(docs/translating.md). Fuzzy entries are not used (Babel's ``write_mo`` leaves them out), so a text
nobody checked shows in English rather than wrong.

Messages are whole sentences with named placeholders (``"{ecu} refused the request"``), never
fragments glued together, so a translation can reorder them. Marking:

- ``N_("...")`` marks a text defined at import time (tables of hints, class attributes); it returns
  the text unchanged and is translated where shown: ``lang.gettext(text)``;
- ``lang.gettext("...", name=value)`` / ``lang.ngettext(one, many, n, ...)`` translate and fill in.

Numbers, money, dates and units go through :class:`Language` (Babel), so German reads 13,6 V and
1.234,56 €.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TypeGuard

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

#: The languages every user-facing text exists in; the first is the source language.
LANGUAGES: tuple[str, ...] = ("en", "de")
SOURCE = LANGUAGES[0]

#: the cookie a web page's EN / DE switch sets (the tablet's and the portal's)
COOKIE = "vci_lang"

#: The box's catalogue (firmware_py/locale/<lang>/LC_MESSAGES/box.po).
BOX_DOMAIN = "box"
BOX_LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def N_(message: str) -> str:  # noqa: N802 - the gettext convention extraction looks for
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


def supported(code: str | None) -> str | None:
    """The language of ``code`` we have ("de-AT" -> "de"), or None."""
    if not code:
        return None
    base = code.replace("_", "-").split("-")[0].strip().lower()
    return base if base in LANGUAGES else None


def texts_of(value: object) -> dict[str, str]:
    """A vehicle data file's text: one English string, or ``{en = "...", de = "..."}``."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    return {SOURCE: str(value)}


def negotiate(accept_language: str | None, default: str = SOURCE) -> str:
    """The best language we have for an HTTP ``Accept-Language`` header (RFC 9110 section 12.5.4).

    Weights are honoured (``de;q=0.1, en`` gives English); a malformed part is skipped, never an
    error: the header is the browser's, and a hostile one only gets the default.
    """
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "")[:1000].split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = -1.0
        if weight <= 0 or weight > 1:
            continue
        language = supported(tag)
        if language:
            choices.append((-weight, index, language))
    return min(choices)[2] if choices else default


def chosen(asked: str | None, remembered: str | None, accept_language: str | None) -> str:
    """A web reader's language: the one asked for (``?lang=``), else the one remembered (the
    ``vci_lang`` cookie the pages' EN / DE switch sets), else the browser's ``Accept-Language``."""
    return supported(asked) or supported(remembered) or negotiate(accept_language)


def from_environment(default: str = SOURCE) -> str:
    """The CLI's language: the POSIX locale variables in gettext's order, else ``default``."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value:
            for code in value.split(":"):
                language = supported(code.split(".")[0])
                if language:
                    return language
            return default
    return default


@functools.cache
def _catalog(directory: Path, domain: str, language: str) -> Catalog | None:
    """The ``.po`` catalogue of ``domain`` in ``language`` as Babel reads it, or None."""
    path = directory / language / "LC_MESSAGES" / f"{domain}.po"
    if language == SOURCE or not path.is_file():
        return None
    with path.open("rb") as po:
        return read_po(po, locale=language, domain=domain)


def messages(
    code: str, *, directory: Path = BOX_LOCALE_DIR, domain: str = BOX_DOMAIN
) -> dict[str, str]:
    """msgid -> translation of a catalogue's checked entries (not fuzzy, not empty, singular:
    what a browser page translates with; firmware_py/web/i18n_routes.py)."""
    catalog = _catalog(directory, domain, supported(code) or SOURCE)
    if catalog is None:
        return {}
    return {
        m.id: m.string
        for m in catalog
        if m.id and isinstance(m.id, str) and isinstance(m.string, str) and m.string
        and not m.fuzzy
    }  # fmt: skip


@functools.cache
def _translations(directory: Path, domain: str, language: str) -> gettext.NullTranslations:
    """The catalogue of ``domain`` in ``language`` for gettext (NullTranslations: English)."""
    catalog = _catalog(directory, domain, language)
    shared = (directory, domain) == (BOX_LOCALE_DIR, BOX_DOMAIN)
    if catalog is None:
        return (
            gettext.NullTranslations()
            if shared
            else _translations(BOX_LOCALE_DIR, BOX_DOMAIN, language)
        )
    mo = io.BytesIO()
    write_mo(mo, catalog, use_fuzzy=False)
    mo.seek(0)
    translations = gettext.GNUTranslations(mo)
    if not shared:
        # the shared texts (firmware_py/errors.py: hints the portal shows too) live in the box's
        # catalogue; another catalogue falls back to it
        translations.add_fallback(_translations(BOX_LOCALE_DIR, BOX_DOMAIN, language))
    return translations


def is_texts(value: object) -> TypeGuard[Mapping[str, str]]:
    """Whether ``value`` is a data file's text in several languages (``{"en": .., "de": ..}``),
    not some other mapping that only reads as text."""
    return isinstance(value, Mapping) and bool(value) and set(value) <= set(LANGUAGES)


def _english(value: object) -> str:
    return str(value.get(SOURCE) or next(iter(value.values()))) if is_texts(value) else str(value)


def _json(value: object) -> object:
    if isinstance(value, Text):
        return value.to_json()
    return {str(k): str(v) for k, v in value.items()} if is_texts(value) else str(value)


@dataclass(frozen=True)
class Text:
    """A text to be shown later in its reader's language: a marked template and its values.

    A value may itself be a :class:`Text` (a reason inside a refusal), translated with it, or a
    vehicle data file's text in several languages (``{"en": ..., "de": ...}``), chosen for the
    reader.
    ``str()`` is the English; :meth:`to_json` is what a browser translates with its catalogue
    (firmware_py/web/static/app.js ``tr``); :meth:`Language.text` translates on the server.
    """

    template: str
    values: Mapping[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.template.format_map({k: _english(v) for k, v in self.values.items()})

    def to_json(self) -> dict[str, object]:
        return {"message": self.template, "values": {k: _json(v) for k, v in self.values.items()}}

    @classmethod
    def from_json(cls, value: object) -> Text | str:
        """A text :meth:`to_json` wrote (stored in a job's result), or the plain string."""
        if not isinstance(value, Mapping):
            return str(value)
        if "message" not in value:  # a data file's text in several languages: kept as it is
            return cls("{text}", {"text": {str(k): str(v) for k, v in value.items()}})
        values = value.get("values") or {}
        return cls(
            str(value.get("message", "")),
            {str(k): cls.from_json(v) for k, v in values.items()}
            if isinstance(values, Mapping)
            else {},
        )

    @classmethod
    def join(cls, texts: Iterable[Text | str], separator: str = "; ") -> Text:
        """Several texts in a row (each translated on its own)."""
        values = {f"part{i}": text for i, text in enumerate(texts)}
        return cls(separator.join("{" + name + "}" for name in values), values)


@dataclass(frozen=True)
class Language:
    """One reader's language: translated texts and Babel's formats for that locale."""

    code: str
    translations: gettext.NullTranslations

    @property
    def locale(self) -> Locale:
        return _locale(self.code)

    # --- texts ---------------------------------------------------------------------------

    def gettext(self, message: str, /, **values: object) -> str:
        """``message`` in this language, with ``{name}`` placeholders filled from ``values``."""
        text = self.translations.gettext(message)
        return _filled(text, message, values) if values else text

    def text(self, text: Text | str) -> str:
        """A :class:`Text` (or a plain string, looked up as it is) in this language."""
        if isinstance(text, str):
            return self.translations.gettext(text)
        values = {
            k: self.text(v) if isinstance(v, Text) else self.choose(v) if is_texts(v) else v
            for k, v in text.values.items()
        }
        return _filled(self.translations.gettext(text.template), text.template, values)

    def ngettext(self, singular: str, plural: str, n: int, /, **values: object) -> str:
        """The singular or plural form for ``n`` (the language's own rule); ``{n}`` is filled."""
        source = singular if n == 1 else plural
        return _filled(self.translations.ngettext(singular, plural, n), source, {"n": n, **values})

    def choose(self, texts: Mapping[str, str] | str | None, default: str = "") -> str:
        """The text for this language from vehicle data that carries several (``{"en":..,"de":..}``);
        English, then any, when this language is missing; a plain string as it is."""
        if texts is None:
            return default
        if isinstance(texts, str):
            return texts
        return texts.get(self.code) or texts.get(SOURCE) or next(iter(texts.values()), default)

    # --- formats -------------------------------------------------------------------------

    def number(self, value: float | Decimal | int, digits: int | None = None) -> str:
        """A number in this locale (1.234,5 in German); ``digits`` fixes the decimals."""
        if digits is None:
            return babel_numbers.format_decimal(value, locale=self.locale)
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return babel_numbers.format_decimal(value, format=pattern, locale=self.locale)

    def money(self, cents: int, currency: str = "EUR") -> str:
        """An amount in cents as money: 1.234,56 € in German; in English 1,234.56 EUR (the code
        after the amount, as the portal's statements and the CLI have always written it, rather
        than CLDR's €1,234.56)."""
        amount = Decimal(cents) / 100
        if self.code == SOURCE:
            return babel_numbers.format_currency(
                amount, currency, format="#,##0.00 ¤¤", locale=self.locale
            )
        return babel_numbers.format_currency(amount, currency, locale=self.locale)

    def unit(self, value: float | Decimal | int, unit: str, digits: int | None = None) -> str:
        """A measured value with its unit: ``unit(13.6, "V", 1)`` -> "13,6 V" in German.

        ``unit`` is the vehicle data's symbol (V, A, km/h, °C, rpm, %, ...): the number is
        formatted per locale and the symbol kept, which is how both languages write them.
        """
        text = self.number(value, digits)
        return f"{text} {unit}" if unit else text

    def date(self, value: dt.date, format: str = "medium") -> str:  # noqa: A002 - Babel's name
        return babel_dates.format_date(value, format=format, locale=self.locale)

    def datetime(
        self, value: dt.datetime, format: str = "medium", tz: str | dt.tzinfo | None = None
    ) -> str:  # noqa: A002 - Babel's name
        """A moment in this locale; naive values are taken as UTC (everything we store is)."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return babel_dates.format_datetime(
            value, format=format, tzinfo=babel_dates.get_timezone(tz or "UTC"), locale=self.locale
        )


def _filled(text: str, source: str, values: Mapping[str, object]) -> str:
    """``text`` with its placeholders filled; a translation whose braces are broken (the catalogue
    check catches a wrong name, not every typo) shows the English rather than failing the page."""
    try:
        return text.format_map(values)
    except (KeyError, ValueError, IndexError, AttributeError):
        try:
            return source.format_map(values)
        except (KeyError, ValueError, IndexError, AttributeError):
            return source


@functools.cache
def _locale(code: str) -> Locale:
    try:
        return Locale.parse(code)
    except (ValueError, UnknownLocaleError):
        return Locale.parse(SOURCE)


def language(
    code: str | None,
    *,
    directory: Path = BOX_LOCALE_DIR,
    domain: str = BOX_DOMAIN,
) -> Language:
    """The :class:`Language` for ``code`` (unknown or None: English) in one catalogue."""
    chosen = supported(code) or SOURCE
    return Language(chosen, _translations(directory, domain, chosen))
