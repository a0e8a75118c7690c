"""Languages: negotiation, catalogues read from .po, Babel's formats, and the CI check that every
user-facing text exists in every language (firmware_py/i18n.py, firmware_py/catalogs.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from firmware_py import catalogs, i18n


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("de;q=0.1, en", "en"),
        ("fr-FR, de-AT;q=0.5", "de"),
        ("fr, it", "en"),
        ("", "en"),
        (None, "en"),
        ("de;q=abc, en;q=0.2", "en"),  # a malformed weight drops that part, not the header
        ("de;q=2", "en"),
        ("," * 5000 + "de", "en"),  # only the first 1000 characters are read
    ],
)
def test_accept_language_picks_the_best_language_we_have(header, expected):
    assert i18n.negotiate(header) == expected


def test_the_cli_follows_the_posix_locale(monkeypatch):
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    assert i18n.from_environment() == "en"
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    assert i18n.from_environment() == "de"
    monkeypatch.setenv("LC_ALL", "C.UTF-8")  # LC_ALL wins over LANG, and C is English
    assert i18n.from_environment() == "en"


def test_german_formats_numbers_money_units_and_dates():
    de, en = i18n.language("de"), i18n.language("en-GB")
    assert de.unit(13.6, "V", 1) == "13,6 V" and en.unit(13.6, "V", 1) == "13.6 V"
    assert de.money(123456) == "1.234,56\xa0€" and en.money(123456) == "1,234.56 EUR"
    assert en.money(-3000) == "-30.00 EUR"
    assert de.number(1234.5) == "1.234,5" and en.number(1234.5) == "1,234.5"
    moment = dt.datetime(2026, 11, 28, 18, 5, tzinfo=dt.UTC)
    assert de.date(moment.date(), "long") == "28. November 2026"
    assert de.datetime(moment, "short", tz="Europe/Berlin") == "28.11.26, 19:05"
    assert i18n.language("xx").code == "en" and i18n.language(None).code == "en"


def test_texts_come_from_the_po_file_with_their_placeholders(tmp_path):
    po = tmp_path / "de" / "LC_MESSAGES" / "t.po"
    po.parent.mkdir(parents=True)
    po.write_text(
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=utf-8\\n'
        'Plural-Forms: nplurals=2; plural=(n != 1);\\n"\n\n'
        'msgid "{ecu} refused the request"\nmsgstr "{ecu} hat die Anfrage abgelehnt"\n\n'
        'msgid "{n} fault"\nmsgid_plural "{n} faults"\nmsgstr[0] "{n} Fehler"\n'
        'msgstr[1] "{n} Fehler"\n\n'
        '#, fuzzy\nmsgid "Unchecked"\nmsgstr "Ungeprueft"\n\n'
        'msgid "Box {box} is offline"\nmsgstr "Box {box ist offline"\n',
        encoding="utf-8",
    )
    de = i18n.language("de", directory=tmp_path, domain="t")
    assert de.gettext("{ecu} refused the request", ecu="DME") == "DME hat die Anfrage abgelehnt"
    assert de.ngettext("{n} fault", "{n} faults", 3) == "3 Fehler"
    assert de.gettext("Unchecked") == "Unchecked"  # fuzzy: nobody checked it, so English
    assert de.gettext("Not in the catalogue") == "Not in the catalogue"
    # a translation with broken braces shows the English instead of failing the page
    assert de.gettext("Box {box} is offline", box="b1") == "Box b1 is offline"
    assert de.choose({"en": "Engine", "de": "Motor"}) == "Motor"
    assert i18n.language("en").choose({"en": "Engine", "de": "Motor"}) == "Engine"
    assert de.choose({"en": "Engine"}) == "Engine"


def test_every_user_facing_text_has_both_languages():
    """The CI check: nothing missing, untranslated, fuzzy, stale or with other placeholders.

    Fix with ``python -m firmware_py.catalogs update``, then translate (docs/translating.md)."""
    found = [line for domain in catalogs.DOMAINS for line in catalogs.problems(domain)]
    assert not found, "\n".join(found)


def test_the_check_finds_a_missing_a_stale_and_a_broken_translation(tmp_path):
    source = tmp_path / "pkg"
    (source / "locale" / "de" / "LC_MESSAGES").mkdir(parents=True)
    (source / "m.py").write_text(
        'lang.gettext("Ticket {ticket} has expired", ticket=t)\nN_("Kept")\nN_("New")\n'
    )
    domain = catalogs.Domain("t", source, (("**.py", "python"),))
    domain.po_path("de").write_text(
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "Ticket {ticket} has expired"\nmsgstr "Ticket {id} ist abgelaufen"\n\n'
        'msgid "Kept"\nmsgstr "Behalten"\n\n'
        'msgid "Gone"\nmsgstr "Weg"\n',
        encoding="utf-8",
    )
    (source / "m.py").write_text((source / "m.py").read_text() + 'N_("Box {box} is offline")\n')
    with domain.po_path("de").open("a", encoding="utf-8") as po:
        po.write('\nmsgid "Box {box} is offline"\nmsgstr "Box {box ist offline"\n')
    found = "\n".join(catalogs.problems(domain))
    assert "'Box {box} is offline': broken braces" in found, found
    assert "missing 'New'" in found and "stale 'Gone'" in found
    assert "placeholders ['id']" in found and "Kept" not in found
    catalogs.update(domain)  # merges: New arrives untranslated, Gone goes
    found = "\n".join(catalogs.problems(domain))
    assert "untranslated 'New'" in found and "Gone" not in found and "missing" not in found


def test_a_ticket_refusal_and_an_nrc_hint_in_german(tmp_path):
    """What the box refuses, as the tablet shows it: the job runner's refusal built from a real
    Entitlements decision (two tickets, two reasons, each translated), and an ECU's NRC with its
    hint; str() stays English for logs and the CLI's default, to_dict() carries the templates."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from firmware_py.errors import EntitlementError, NegativeResponseError
    from firmware_py.gateway.entitlements import Entitlements
    from firmware_py.gateway.store import Store
    from firmware_py.gateway.trusted_time import TrustedClock
    from firmware_py.i18n import N_, Text
    from firmware_py.uds.ecu import NRC_HINTS
    from portal.tickets import issue

    key = Ed25519PrivateKey.generate()  # TEST key, made for this test
    store = Store(tmp_path / "state")
    ent = Entitlements(store, {"k1": key.public_key()}, "box-i18n", TrustedClock(store))
    ent.add_ticket(issue(key, "k1", tariff="info-1m", device="box-i18n"))
    ent.add_ticket(issue(key, "k1", tariff="basic-1d", device="box-i18n", vin="WBAJA71090B123456"))
    decision = ent.check("coding", vin="WBA5R11000FH99999", params={"action": "read"})
    assert not decision.allowed and isinstance(decision.why, Text)
    err = EntitlementError(
        N_("{job} is not allowed: {reason}"),
        values={"job": decision.job, "reason": decision.why},
        hint=N_("Add a ticket of a tariff that includes it ({tariffs})"),
        hint_values={"tariffs": ", ".join(decision.would_allow)},
    )
    de = err.localized(i18n.language("de"))
    assert "ist nicht erlaubt" in de and "umfasst coding nicht" in de, de
    assert "gilt für das Fahrzeug WBAJA71090B123456, dieses ist WBA5R11000FH99999" in de, de
    assert "Fügen Sie ein Ticket eines Tarifs hinzu" in de, de
    assert str(err).startswith(f"{decision.job} is not allowed: ticket ")  # English as before
    assert err.to_dict()["i18n"]["message"]["values"]["reason"]["values"]  # nested, for the page

    nrc = NegativeResponseError(0x31, 0x22, "conditionsNotCorrect", ecu="DME", hint=NRC_HINTS[0x22])
    assert nrc.localized(i18n.language("de")) == (
        "Steuergerät DME: Dienst 0x31 mit NRC 0x22 conditionsNotCorrect abgelehnt. "
        "Bedingungen nicht erfüllt: Zündung ein, Motor aus, Fahrzeug im Stillstand prüfen"
    )
    assert str(nrc).startswith("ECU DME: service 0x31 refused with NRC 0x22")


def test_a_step_with_values_is_shown_in_the_readers_language():
    """A job's step whose name has placeholders (a programming segment, a service item from the
    data file) is published in English with its template, which the reader's language fills."""
    from firmware_py.gateway.jobs import _step
    from firmware_py.i18n import Text, language
    from firmware_py.uds.flash.plan import Step

    de = language("de")
    erase = Step("erase", 1)
    shown = _step(erase.template, {**erase.values, "ecu": "DME"})
    assert shown["step"] == erase.name == "erase segment 2"
    assert de.text(Text.from_json(shown["step_i18n"])) == "Segment 2 löschen"
    oil = _step("reset {item}", {"item": {"en": "Engine oil", "de": "Motoröl"}})
    assert oil["step"] == "reset Engine oil"
    assert de.text(Text.from_json(oil["step_i18n"])) == "Motoröl zurücksetzen"
    # a name without placeholders, with a placeholder its data lacks, or with stray braces
    for plain in ("read fault memory", "reset {item}", "odd { name"):
        assert _step(plain, {}) == {"step": plain, "step_i18n": None}


# The packages whose errors reach a tablet or portal user, and the calls that are not our errors:
# python-can's and udsoncan's own exceptions (raised where their interface asks for them and
# converted at our adapters), internal retry signals and redirects.
USER_FACING = ("firmware_py/gateway", "firmware_py/uds", "firmware_py/transport", "firmware_py/web",
               "firmware_py/reports", "portal/web", "portal/sessions.py", "portal/accounts.py",
               "portal/boxes.py", "portal/credit.py", "portal/delivery.py", "portal/packages.py",
               "portal/workshop_data.py", "portal/content/access.py", "portal/enrolment.py",
               "portal/delivery.py")  # fmt: skip
NOT_OURS = {"CanInitializationError", "CanOperationError", "TimeoutException", "_Broken", "_broken",
            "HTTPSeeOther", "HTTPNotFound", "HTTPBadRequest", "HTTPForbidden"}  # fmt: skip


def test_every_error_a_user_meets_is_raised_as_a_template():
    """A message raised as a literal or an f-string cannot be translated; every one in the
    user-facing packages is an ``N_()`` template with its values (docs/translating.md)."""
    import ast
    import builtins
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    builtin = {n for n in dir(builtins) if isinstance(getattr(builtins, n), type)}
    found = []
    for place in USER_FACING:
        path = root / place
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            for node in ast.walk(ast.parse(file.read_text())):
                if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                    continue
                func = node.exc.func
                name = getattr(func, "id", None) or getattr(func, "attr", None)
                at = 1 if name == "TicketRefused" else 0  # TicketRefused(reason, message, hint)
                if name in builtin or name in NOT_OURS or len(node.exc.args) <= at:
                    continue
                message = node.exc.args[at]
                if isinstance(message, ast.JoinedStr) or (
                    isinstance(message, ast.Constant) and isinstance(message.value, str)
                ):
                    found.append(f"{file.relative_to(root)}:{node.lineno}: {name}")
    assert not found, "raised with a plain message:\n" + "\n".join(found)


def test_every_choice_of_a_job_form_has_its_words():
    """A form shows a CHOICE field's choices by their labels (gateway/job_params.py); a new
    choice without one would show its bare name."""
    from firmware_py.gateway.job_params import CHOICE_LABELS, JOB_KINDS, FieldType

    choices = {c for s in JOB_KINDS.values() for f in s.fields if f.type is FieldType.CHOICE
               for c in f.choices}  # fmt: skip
    assert choices == set(CHOICE_LABELS)
