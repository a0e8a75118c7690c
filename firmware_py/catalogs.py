"""The translation catalogues of the repository: extract, update and check (Babel).

Two catalogues (gettext domains), one per program, so the box never carries the portal's texts:

- ``box``: firmware_py (Python and the tablet page's JavaScript) -> firmware_py/locale;
- ``portal``: portal (Python) -> portal/locale.

``python -m firmware_py.catalogs update`` extracts the marked texts and merges them into every
language's ``.po`` (new texts arrive untranslated, vanished ones are dropped); a translator then
fills in the German. ``python -m firmware_py.catalogs check`` (run by the tests, so by CI) fails
when a text is untranslated, fuzzy or stale (in the catalogue but no longer in the code), or a
translation loses or invents a ``{placeholder}``. docs/translating.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import re
import string
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from firmware_py.i18n import LANGUAGES, SOURCE

ROOT = Path(__file__).resolve().parent.parent
#: the calls whose first string argument is a user-facing text (Babel's keyword spec)
KEYWORDS = {
    "gettext": None,
    "ngettext": (1, 2),
    "N_": None,
    "_": None,
    # a job's step names (JobContext.step("read fault memory")), shown on the tablet
    "step": None,
}


@dataclass(frozen=True)
class Domain:
    name: str
    source: Path  # the package whose code is extracted
    methods: tuple[tuple[str, str], ...]
    #: calls of this program whose argument at that position is a text too
    keywords: tuple[tuple[str, int], ...] = ()

    @property
    def locale_dir(self) -> Path:
        return self.source / "locale"

    def po_path(self, language: str) -> Path:
        return self.locale_dir / language / "LC_MESSAGES" / f"{self.name}.po"


DOMAINS = (
    Domain(
        "box",
        ROOT / "firmware_py",
        (("**/locale/**", "ignore"), ("**.py", "python"), ("web/static/**.js", "javascript")),
    ),
    Domain(
        "portal",
        ROOT / "portal",
        (("**/locale/**", "ignore"), ("**.py", "python")),
        # a page's title: page(request, "Buy a ticket", ...), error_page(request, 403, "Refused", ...)
        (("page", 2), ("error_page", 3)),
    ),
)

STABLE_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)[^{}]*\}")


def extract(domain: Domain) -> Catalog:
    """The texts marked in ``domain``'s code, as a template catalogue."""
    template = Catalog(project="vci-gateway", domain=domain.name, locale=None)
    found = extract_from_dir(
        str(domain.source),
        method_map=list(domain.methods),
        # texts inside a JavaScript template literal's ${...} are found too
        options_map={pattern: {"parse_template_string": "true"} for pattern, _ in domain.methods},
        keywords={**KEYWORDS, **{name: (index,) for name, index in domain.keywords}},
        comment_tags=("Translators:",),
        strip_comment_tags=True,
    )
    for filename, lineno, message, comments, context in found:
        if not message or (isinstance(message, tuple) and not message[0]):
            continue
        where = (str(Path(domain.source.name) / filename), lineno)
        template.add(message, locations=[where], auto_comments=comments, context=context)
    return template


def read(domain: Domain, language: str) -> Catalog:
    path = domain.po_path(language)
    if not path.is_file():
        return Catalog(locale=language, domain=domain.name, project="vci-gateway")
    with path.open("rb") as po:
        return read_po(po, locale=language, domain=domain.name)


def update(domain: Domain) -> list[Path]:
    """Merge the code's texts into every translated language's catalogue; returns the files written."""
    template = extract(domain)
    written = []
    for language in LANGUAGES:
        if language == SOURCE:
            continue
        catalog = read(domain, language)
        catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
        catalog.obsolete.clear()
        # fixed header dates and no header fuzzy flag: an update changes only the entries, so
        # two branches that each add texts merge without a conflict in the header
        catalog.creation_date = catalog.revision_date = STABLE_DATE
        catalog.fuzzy = False
        catalog.language_team = "vci-gateway <translations>"
        catalog.last_translator = "vci-gateway <translations>"
        catalog.copyright_holder = "the vci-gateway authors"
        path = domain.po_path(language)
        path.parent.mkdir(parents=True, exist_ok=True)
        out = io.BytesIO()
        write_po(
            out, catalog, width=100, omit_header=False, sort_output=False, include_lineno=False
        )
        path.write_bytes(out.getvalue())
        written.append(path)
    return written


def _strings(message: object) -> tuple[str, ...]:
    return tuple(message) if isinstance(message, list | tuple) else (str(message),)


def problems(domain: Domain) -> Iterator[str]:
    """Every reason the catalogues of ``domain`` are not complete, one line each."""
    template = extract(domain)
    wanted = {(m.id if isinstance(m.id, str) else m.id[0], m.context) for m in template if m.id}
    for language in LANGUAGES:
        if language == SOURCE:
            continue
        catalog = read(domain, language)
        have = {(m.id if isinstance(m.id, str) else m.id[0], m.context) for m in catalog if m.id}
        for msgid, context in sorted(wanted - have, key=str):
            where = template.get(msgid, context)
            loc = f"{where.locations[0][0]}:{where.locations[0][1]}" if where else "?"
            yield f"{domain.name}/{language}: missing {msgid!r} ({loc}): run update, then translate"
        for msgid, _context in sorted(have - wanted, key=str):
            yield f"{domain.name}/{language}: stale {msgid!r}: no longer in the code; run update"
        for message in catalog:
            if not message.id:
                continue
            first = message.id if isinstance(message.id, str) else message.id[0]
            if (first, message.context) not in wanted:
                continue
            if message.fuzzy:
                yield f"{domain.name}/{language}: fuzzy {first!r}: check the translation"
            translated = _strings(message.string)
            if not all(translated):
                yield f"{domain.name}/{language}: untranslated {first!r}"
                continue
            source = set(PLACEHOLDER.findall(" ".join(_strings(message.id))))
            for text in translated:
                try:
                    list(string.Formatter().parse(text))
                except ValueError as err:
                    yield f"{domain.name}/{language}: {first!r}: broken braces ({err})"
                    continue
                names = set(PLACEHOLDER.findall(text))
                if names != source - {"n"} and names != source:
                    yield (
                        f"{domain.name}/{language}: {first!r}: placeholders "
                        f"{sorted(names)} in the translation, {sorted(source)} in the source"
                    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_py.catalogs",
        description="Extract, update and check the translation catalogues (docs/translating.md).",
    )
    parser.add_argument("action", choices=("update", "check"))
    parser.add_argument("--domain", choices=[d.name for d in DOMAINS], help="one catalogue only")
    args = parser.parse_args(argv)
    domains = [d for d in DOMAINS if args.domain in (None, d.name)]
    if args.action == "update":
        for domain in domains:
            for path in update(domain):
                print(f"updated {path.relative_to(ROOT)}")
        return 0
    found = [line for domain in domains for line in problems(domain)]
    for line in found:
        print(line)
    print(f"{len(found)} problem(s)" if found else "catalogues complete")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
