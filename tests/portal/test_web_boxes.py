"""Claiming boxes on the portal's pages (real HTTP on loopback, the portal's CA, SQLite and
PostgreSQL): a wrong label code is refused and counted, a workshop that tries device ids is
stopped after a few refusals in all (not five per box), a claim and the workshop's ownership are
one transaction, and the list shows what the workshop owns."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.identity import enrol_proof, label_key, make_identity
from portal import pki
from portal.credit import Signer
from portal.db.models import ClaimRefusal, EnrolledBox, WorkshopBox
from portal.enrolment import CLAIM_FAILURES, WORKSHOP_REFUSALS, Enrolment
from portal.invoices import Seller
from portal.web.guard import WebConfig
from tests.portal.conftest import FAST_HASHER, sign_up
from tests.portal.web_client import Browser, portal

CODE = "PDKXRTNQ"


def asking_box(tmp_path: Path, enrolment: Enrolment, device: str, code: str = CODE) -> str:
    """A box ``device`` that made its key and CSR and asked to be enrolled; its CSR's PEM."""
    csr = make_identity(tmp_path / device, device)
    der = csr.public_bytes(serialization.Encoding.DER)
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    assert enrolment.request(device, pem, enrol_proof(label_key(device, code), device, der)) == {
        "state": "pending"
    }
    return pem


def count(factory: sessionmaker[Session], table: Any) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


@pytest.fixture
def claiming(factory: sessionmaker[Session], signer: Signer, seller: Seller, tmp_path: Path):  # type: ignore[no-untyped-def]
    pki.make_ca(tmp_path / "pki")
    sign_up(factory, 1)
    sign_up(factory, 2)
    cfg = WebConfig(factory, signer, seller, hasher=FAST_HASHER, pki=tmp_path / "pki")
    return cfg, Enrolment(factory, tmp_path / "pki")


def test_a_claim_with_the_right_code_makes_the_box_the_workshops(
    claiming: Any, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    cfg, enrolment = claiming
    asking_box(tmp_path, enrolment, "pi-00000000000000a1")

    async def run() -> None:
        async with portal(cfg) as (server, browsers):
            owner, other = Browser(server), Browser(server)
            browsers += [owner, other]
            assert (
                await owner.log_in("owner1@example.com", "correct horse battery staple")
            ).status == 303
            assert (
                await other.log_in("owner2@example.com", "correct horse battery staple")
            ).status == 303
            form = {"device": "pi-00000000000000a1", "code": "AAAAAAAA", "label": "Bay <3>"}
            wrong = await owner.post("/boxes/claim", form, csrf=await owner.csrf("/boxes"))
            assert wrong.status == 403 and "label code does not match" in wrong.text
            assert count(factory, WorkshopBox) == count(factory, EnrolledBox) == 0
            form["code"] = "pdkx-rtnq"  # as typed from the label: case and dash do not matter
            done = await owner.post("/boxes/claim", form, csrf=await owner.csrf("/boxes"))
            assert (done.status, done.location) == (303, "/boxes/pi-00000000000000a1")
            listed = await owner.get("/boxes")
            assert "Bay &lt;3&gt;" in listed.text and "not seen yet" in listed.text
            assert "by owner1@example.com" in listed.text
            page = await owner.get("/boxes/pi-00000000000000a1")
            assert 'href="/boxes/pi-00000000000000a1/sessions"' in page.text
            assert 'action="/boxes/pi-00000000000000a1/revoke"' in page.text
            # a revocation not confirmed with the device id: refused, in the reader's language
            for q, said in (("?lang=de", "Geben Sie zur Bestätigung der Sperrung die "
                             "Gerätekennung der Box ein."),
                            ("?lang=en", "device id to confirm the revocation.")):  # fmt: skip
                unconfirmed = await owner.post(f"/boxes/pi-00000000000000a1/revoke{q}",
                                               {"confirm": "pi-0"}, csrf=await owner.csrf("/boxes"))  # fmt: skip
                assert unconfirmed.status == 400 and said in unconfirmed.text, unconfirmed.text
            # the same box for another workshop: already claimed; and not on its pages
            again = await other.post("/boxes/claim", form, csrf=await other.csrf("/boxes"))
            assert again.status == 409 and "already claimed" in again.text
            german = await other.post("/boxes/claim?lang=de", form,
                                      csrf=await other.csrf("/boxes"))  # fmt: skip
            assert german.status == 409 and "ist bereits zugeordnet" in german.text, german.text
            await other.get("/boxes?lang=en")
            assert "pi-00000000000000a1" not in (await other.get("/boxes")).text
            assert (await other.get("/boxes/pi-00000000000000a1")).status == 404

    asyncio.run(run())
    with factory() as session:
        box = session.scalar(select(WorkshopBox))
        assert box is not None and (box.device, box.label) == ("pi-00000000000000a1", "Bay <3>")
    # the box fetches its certificate at its next request
    issued = enrolment.request(
        "pi-00000000000000a1", *_own_request(tmp_path, "pi-00000000000000a1")
    )
    assert issued["state"] == "issued"


def _own_request(tmp_path: Path, device: str) -> tuple[str, str]:
    from cryptography import x509

    pem = (tmp_path / device / "identity" / "box.csr").read_text()
    der = x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER)
    return pem, enrol_proof(label_key(device, CODE), device, der)


def test_a_claim_whose_record_fails_leaves_nothing_claimed(
    claiming: Any, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """The certificate is signed, then the workshop's record fails (here: a name longer than the
    column; in production the database could fail the same way): nothing is claimed, the box
    gets no certificate, and a corrected claim works."""
    cfg, enrolment = claiming
    asking_box(tmp_path, enrolment, "pi-00000000000000b2")

    async def run() -> None:
        async with portal(cfg) as (server, browsers):
            owner = Browser(server)
            browsers.append(owner)
            await owner.log_in("owner1@example.com", "correct horse battery staple")
            form = {"device": "pi-00000000000000b2", "code": CODE, "label": "x" * 101}
            failed = await owner.post("/boxes/claim", form, csrf=await owner.csrf("/boxes"))
            assert failed.status == 400 and "longer than 100" in failed.text
            assert count(factory, EnrolledBox) == count(factory, WorkshopBox) == 0
            assert enrolment.request("pi-00000000000000b2", *_own_request(
                tmp_path, "pi-00000000000000b2"))["state"] == "pending"  # fmt: skip
            form["label"] = "Bay 2"
            done = await owner.post("/boxes/claim", form, csrf=await owner.csrf("/boxes"))
            assert done.status == 303

    asyncio.run(run())
    assert count(factory, EnrolledBox) == count(factory, WorkshopBox) == 1


def test_claims_are_limited_per_workshop_and_per_box(
    claiming: Any, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Someone enumerating device ids gets WORKSHOP_REFUSALS refused claims in all, whatever the
    device ids; a box gets CLAIM_FAILURES wrong codes, whoever sends them."""
    cfg, enrolment = claiming
    asking_box(tmp_path, enrolment, "pi-00000000000000c3")
    asking_box(tmp_path, enrolment, "pi-00000000000000d4")

    async def run() -> None:
        async with portal(cfg) as (server, browsers):
            owner1, owner2 = Browser(server), Browser(server)
            browsers += [owner1, owner2]
            await owner1.log_in("owner1@example.com", "correct horse battery staple")
            await owner2.log_in("owner2@example.com", "correct horse battery staple")
            token = await owner1.csrf("/boxes")
            for n in range(WORKSHOP_REFUSALS):  # device ids nobody has, or a wrong code
                device = f"pi-{n:016x}" if n % 2 else "pi-00000000000000c3"
                answer = await owner1.post("/boxes/claim", {"device": device, "code": "WRONG123"},
                                           csrf=token)  # fmt: skip
                assert answer.status in (403, 404), answer.text
            # now even the right code for a box that asked is refused to this workshop
            right = {"device": "pi-00000000000000d4", "code": CODE, "label": ""}
            limited = await owner1.post("/boxes/claim", right, csrf=token)
            assert limited.status == 429 and "too many refused claims" in limited.text
            assert count(factory, WorkshopBox) == 0
            # box c3 had WORKSHOP_REFUSALS / 2 = CLAIM_FAILURES wrong codes: locked for anyone
            assert WORKSHOP_REFUSALS // 2 >= CLAIM_FAILURES
            token2 = await owner2.csrf("/boxes")
            locked = await owner2.post("/boxes/claim", {"device": "pi-00000000000000c3",
                                                        "code": CODE}, csrf=token2)  # fmt: skip
            assert locked.status == 429 and "too many wrong label codes" in locked.text
            # another workshop's own claims are not limited by the first one's refusals
            done = await owner2.post("/boxes/claim", right, csrf=token2)
            assert done.status == 303, done.text

    asyncio.run(run())
    with factory() as session:
        assert session.scalar(select(WorkshopBox.device)) == "pi-00000000000000d4"
        assert session.scalar(select(func.count()).select_from(ClaimRefusal)) >= WORKSHOP_REFUSALS


def test_without_the_ca_boxes_cannot_be_claimed_and_the_page_says_why(
    claiming: Any, factory: sessionmaker[Session], signer: Signer, seller: Seller
) -> None:
    async def run() -> None:
        async with portal(WebConfig(factory, signer, seller, hasher=FAST_HASHER)) as (
            server, browsers,
        ):  # fmt: skip
            owner = Browser(server)
            browsers.append(owner)
            await owner.log_in("owner1@example.com", "correct horse battery staple")
            answer = await owner.post("/boxes/claim", {"device": "pi-00000000000000e5",
                                                       "code": CODE}, csrf=await owner.csrf("/boxes"))  # fmt: skip
            assert answer.status == 503 and "--pki" in answer.text

    asyncio.run(run())


def test_a_box_revoked_on_the_command_line_shows_revoked_on_the_pages(
    claiming: Any, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """``vci-portal box revoke`` (Enrolment.revoke without a caller's record) marks the
    workshop's box revoked too: the pages never show a revoked box as usable."""
    from portal import boxes
    from portal.accounts import Actor, find_user

    cfg, enrolment = claiming
    asking_box(tmp_path, enrolment, "pi-00000000000000f6")
    with factory() as session:
        owner = find_user(session, "owner1@example.com")
        assert owner is not None and owner.workshop_id is not None
        actor, workshop_id = Actor.of(owner), owner.workshop_id
    enrolment.claim("pi-00000000000000f6", CODE, workshop_id=workshop_id,
                    then=lambda s, _c: boxes.record_claim(s, actor, workshop_id,
                                                          "pi-00000000000000f6"))  # fmt: skip
    enrolment.revoke("pi-00000000000000f6")
    with factory() as session:
        box = session.scalar(select(WorkshopBox))
        assert box is not None and box.revoked_at is not None
    assert [p.read_bytes() for p in (tmp_path / "pki").glob("crl.pem")]
    assert pki.revoked_serials(tmp_path / "pki") == [enrolment.boxes()[0].serial]


def test_concurrent_wrong_codes_get_no_more_tries_than_one_after_the_other(
    claiming: Any, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Guesses sent at the same moment (several portal processes, or threads) are counted one
    after the other: on both databases a box gets exactly CLAIM_FAILURES wrong codes."""
    from firmware_py.errors import EnrolmentError
    from tests.portal.conftest import at_once

    _, enrolment = claiming
    asking_box(tmp_path, enrolment, "pi-00000000000000a7")
    guesses = iter(f"GUESS{n:03d}" for n in range(100))

    def guess() -> str:
        try:
            enrolment.claim("pi-00000000000000a7", next(guesses))
        except EnrolmentError as err:
            return str(err.status)
        return "claimed"

    outcomes = at_once(12, guess)
    assert outcomes == {"403": CLAIM_FAILURES, "429": 12 - CLAIM_FAILURES}, outcomes


def test_refused_claims_are_forgotten_after_the_lock(
    claiming: Any, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    from firmware_py.errors import EnrolmentError
    from portal.enrolment import CLAIM_LOCK

    _, enrolment = claiming
    asking_box(tmp_path, enrolment, "pi-00000000000000a8")
    for n in range(CLAIM_FAILURES):
        with pytest.raises(EnrolmentError, match="does not match"):
            enrolment.claim("pi-00000000000000a8", "WRONG123", now=1000.0 + n)
    with pytest.raises(EnrolmentError, match="too many wrong label codes"):
        enrolment.claim("pi-00000000000000a8", CODE, now=1000.0 + CLAIM_FAILURES)
    assert count(factory, ClaimRefusal) == CLAIM_FAILURES
    later = 1000.0 + CLAIM_LOCK + CLAIM_FAILURES
    with pytest.raises(EnrolmentError, match="does not match"):  # counted afresh
        enrolment.claim("pi-00000000000000a8", "WRONG123", now=later)
    assert count(factory, ClaimRefusal) == 1


def test_the_buy_form_offers_the_workshops_usable_boxes_and_refuses_others(
    claiming: Any, factory: sessionmaker[Session]
) -> None:
    """The box of a ticket is chosen from the workshop's claimed boxes that are not revoked (a
    select, not a typed id); a posted device of another workshop or a revoked one is refused by
    the server and nothing is debited."""
    from portal import accounts, boxes, credit
    from portal.accounts import Actor, find_user
    from portal.credit import BankTransfer
    from tests.portal.conftest import PASSWORD, claim

    cfg, _ = claiming
    with factory() as session, session.begin():
        ops = accounts.add_operator(session, login="ops@portal.example", name="Ops",
                                    password=PASSWORD, hasher=FAST_HASHER)  # fmt: skip
        session.flush()
        mine, theirs = (Actor.of(u) for u in (find_user(session, "owner1@example.com"),
                                              find_user(session, "owner2@example.com")))  # fmt: skip
        BankTransfer().book(session, Actor.of(ops), mine.workshop_id or 0, 5000, "SEPA-1")
    claim(factory, mine, "pi-00000000000000a1", "Bay <1>")
    claim(factory, mine, "pi-00000000000000a9")
    claim(factory, theirs, "pi-00000000000000b2")
    with factory() as session, session.begin():
        boxes.record_revocation(session, mine, "pi-00000000000000a9")

    async def run() -> None:
        async with portal(cfg) as (server, browsers):
            owner = Browser(server)
            browsers.append(owner)
            assert (await owner.log_in("owner1@example.com", PASSWORD)).status == 303
            form = (await owner.get("/buy")).text
            offered = re.findall(r'<select name="device">(.*?)</select>', form, re.S)
            assert offered and '<option value="pi-00000000000000a1">' in offered[0]
            assert "Bay &lt;1&gt;" in offered[0]
            assert "pi-00000000000000a9" not in offered[0]  # revoked
            assert "pi-00000000000000b2" not in form  # another workshop's
            assert 'name="device" type' not in form  # no typed device id
            for device, words in (("pi-00000000000000b2", "no box"),
                                  ("pi-00000000000000a9", "was revoked")):  # fmt: skip
                refused = await owner.post("/buy", {"tariff": "basic-9h", "device": device},
                                           csrf=await owner.csrf("/buy"))  # fmt: skip
                assert refused.status == 400 and words in refused.text
            bought = await owner.post("/buy", {"tariff": "basic-9h",
                                               "device": "pi-00000000000000a1"},
                                      csrf=await owner.csrf("/buy"))  # fmt: skip
            assert bought.status == 303

    asyncio.run(run())
    with factory() as session:
        assert [p.device for p in credit.purchases(session, mine, mine.workshop_id or 0)] == [
            "pi-00000000000000a1"
        ]
        assert credit.balance(session, mine, mine.workshop_id or 0) == 5000 - 900
