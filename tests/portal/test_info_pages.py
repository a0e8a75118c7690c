"""The repair information pages (portal/web/info_pages.py) over a real socket on SQLite and
PostgreSQL, with the sample content: only a workshop holding a valid ticket with repair
information reads them (none, a ticket without the scope, a revoked one: 403 saying what to buy);
search filtered to a VIN with marked snippets; the vehicle page's campaign notice; a DTC's
instruction and wiring diagram; a drawing under its own CSP; a part with its supersession and
whether newer software exists; the job sheet PDF's text."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy.orm import Session, sessionmaker

from portal import accounts, credit, delivery
from portal.accounts import Actor
from portal.content import format, sample, store
from portal.credit import BankTransfer, Signer
from portal.invoices import Seller
from portal.web.guard import NEXT_COOKIE
from tests.portal.conftest import FAST_HASHER, PASSWORD, claim, sign_up
from tests.portal.test_content import F30, G30
from tests.portal.test_web_auth import make_cfg
from tests.portal.web_client import Browser, portal

DEVICE = "pi-00000000deadbeef"


@pytest.fixture
def shops(factory: sessionmaker[Session], signer: Signer, seller: Seller,
          tmp_path: Path) -> dict[str, Actor]:  # fmt: skip
    """Workshop 1 with a Basic ticket (repair information included), 2 with a help desk ticket
    only, 3 whose Basic ticket the operator revoked; the sample content imported."""
    out = tmp_path / "sample"
    sample.write(out)
    store.load(factory, format.read(out))
    owners = {n: sign_up(factory, n) for n in (1, 2, 3)}
    with factory() as session, session.begin():
        ops = Actor.of(accounts.add_operator(session, login="ops@portal.example", name="Ops",
                                             password=PASSWORD, hasher=FAST_HASHER))  # fmt: skip
        for n, who in owners.items():
            BankTransfer().book(session, ops, who.workshop_id, 10_000, f"SEPA-{n}")  # type: ignore[arg-type]
    bought = {}
    for n, tariff in ((1, "basic-9h"), (2, "helpdesk"), (3, "basic-9h")):
        who = owners[n]
        assert who.workshop_id
        claim(factory, who, f"{DEVICE}-{n}")  # each workshop its own box
        bought[n] = credit.buy_ticket(factory, who, who.workshop_id, tariff=tariff,
                                      device=f"{DEVICE}-{n}", signer=signer, seller=seller)  # fmt: skip
    delivery.revoke_purchase(factory, ops, bought[3].id)
    return owners


def test_only_a_workshop_with_repair_information_reads_it(
    factory: sessionmaker[Session], signer: Signer, seller: Seller, shops: dict[str, Actor]
) -> None:
    async def run() -> None:
        async with portal(make_cfg(factory, signer, seller)) as (server, browsers):
            for n in (1, 2, 3):
                browser = Browser(server)
                browsers.append(browser)
                assert (await browser.log_in(f"owner{n}@example.com", PASSWORD)).status == 303
                for path in ("/info?q=boost", f"/info/vehicles/{G30}", "/info/dtc?code=12A100",
                             "/info/instructions/RI-DME-12A100", "/info/jobsheet",
                             "/info/drawings/wiring/WD-DME-12A100.svg"):  # fmt: skip
                    answer = await browser.get(path)
                    if n == 1:
                        assert answer.status == 200, (path, answer.text[:300])
                    else:
                        assert answer.status == 403, (n, path)
                        assert "Boost" not in answer.text and "<svg" not in answer.text
                        if not path.startswith("/info/drawings"):
                            assert "holds no valid ticket with repair information" in answer.text
                            assert "Informationssuche, 1 month" in answer.text

    asyncio.run(run())


def test_search_vehicle_dtc_instruction_wiring_part_and_job_sheet(
    factory: sessionmaker[Session],
    signer: Signer,
    seller: Seller,
    shops: dict[str, Actor],
    tmp_path: Path,
) -> None:
    import os

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from firmware_py.uds.flash.package import build_package
    from portal.packages import PackageStore

    publisher = Ed25519PrivateKey.generate()  # TEST key, made for this test
    packages = PackageStore(factory, tmp_path / "store", {"pub1": publisher.public_key()})
    for version in ("12.04.00", "12.06.00"):  # what a box can program into the DME
        packages.add(io.BytesIO(build_package(
            ecu_name="DME", ecu_address=0x12, version=version, segments=[(0x8000, os.urandom(64))],
            key=publisher, kid="pub1", image_format="bin",
        )), f"dme-{version}.vcipkg")  # fmt: skip

    async def run() -> None:
        async with portal(make_cfg(factory, signer, seller)) as (server, browsers):
            b = Browser(server)
            browsers.append(b)
            assert (await b.log_in("owner1@example.com", PASSWORD)).status == 303
            assert 'href="/info"' in (await b.get("/dashboard")).text

            found = await b.get(f"/info?q=occupancy+mat+connector&vin={G30}")
            assert "CAMPAIGN-0047-SAMPLE" in found.text and "<mark>" in found.text
            other = await b.get(f"/info?q=occupancy+mat+connector&vin={F30}")
            assert "CAMPAIGN-0047-SAMPLE" not in other.text  # only for the G30's type code
            hostile = await b.get("/info?q=%3Cscript%3Ealert(1)%3C/script%3E+boost")
            assert hostile.status == 200 and "<script>" not in hostile.text

            vehicle = await b.get(f"/info/vehicles/{G30}")
            assert 'data-testid="campaigns"' in vehicle.text
            assert "Open technical campaigns for this vehicle: 2" in vehicle.text
            assert "5 Series Sedan (G30) 530i" in vehicle.text
            f30 = await b.get(f"/info/vehicles/{F30}")
            assert "No open technical campaign" in f30.text and "CAMPAIGN-0032-SAMPLE" in f30.text
            assert (await b.get("/info/vehicles/NOTAVIN")).status == 404

            dtc = await b.get(f"/info/dtc?code=P12A1-00&vin={G30}")
            assert "/info/instructions/RI-DME-12A100" in dtc.text
            assert "/info/bulletins/SB-12-04-SAMPLE" in dtc.text
            instruction = await b.get(f"/info/instructions/RI-DME-12A100?vin={G30}")
            assert "<h1>Boost pressure too low: diagnosis and repair</h1>" in instruction.text
            assert "Torque: 8 Nm" in instruction.text
            assert "/info/wiring/WD-DME-12A100" in instruction.text
            wiring = await b.get("/info/wiring/WD-DME-12A100")
            assert 'src="/info/drawings/wiring/WD-DME-12A100.svg"' in wiring.text
            assert "X01801" in wiring.text and "X01801.2" in wiring.text
            svg = await b.get("/info/drawings/wiring/WD-DME-12A100.svg")
            assert svg.headers["Content-Type"].startswith("image/svg+xml")
            assert svg.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert 'data-connector="X01801"' in svg.text
            assert (await b.get("/info/drawings/wiring/nope.svg")).status == 404
            assert (await b.get("/info/instructions/NOPE")).status == 404

            part = await b.get("/info/parts/9901805")  # superseded: the new one is named
            assert part.status == 404
            part = await b.get("/info/parts/9901800")
            assert "Supersedes 9901805" in part.text
            ecu = await b.get("/info/parts/8487512?sw=00002B12:41.7.12&sw=00002B13:12.0.4")
            assert "installed 41.7.12: newer software 41.8.0 exists" in ecu.text
            assert "installed 12.0.4: up to date" in ecu.text
            assert 'data-testid="store-software"' not in ecu.text  # the link named no ECU
            ecu = await b.get("/info/parts/8487512?sw=00002B12:41.7.12&ecu=DME&version=12.05.00")
            assert (
                "Newer software in the package store for DME (installed 12.05.00): 12.06.00"
                in ecu.text
            )
            ecu = await b.get("/info/parts/8487512?ecu=DME&version=12.06.00")
            assert "DME 12.06.00: no newer software in the package store" in ecu.text
            ecu = await b.get("/info/parts/8487512?ecu=DME%3Cb%3E&version=12.05.00")
            assert ecu.status == 200 and 'data-testid="store-software"' not in ecu.text
            for odd in ("00002B12:1..2", "00002B12:4\u00b2.1.1", "00002B12:41.7.12%0A"):
                ecu = await b.get(f"/info/parts/8487512?sw={odd}")  # not a version: ignored
                assert ecu.status == 200 and "installed" not in ecu.text

            sheet = await b.get(f"/info/jobsheet?vin={G30}")
            assert 'value="62 01 020"' in sheet.text and "(6 units)" in sheet.text
            pdf = await b.get(f"/info/jobsheet.pdf?vin={G30}&op=62+01+020&op=00+00+010&rate=120")
            assert pdf.headers["Content-Type"] == "application/pdf"
            text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.body)).pages)
            for expected in ("Job sheet", "Werkstatt 1 GmbH", G30, "62 01 020", "00 00 010",
                             "120.00 EUR", "0.83 h", "100.00 EUR", "sample sample-2026.11",
                             "Read fault memory and test drive"):  # fmt: skip
                assert expected in text, expected
            # the same sheet printed in German (the language asked for at print time)
            pdf = await b.get(f"/info/jobsheet.pdf?vin={G30}&op=62+01+020&op=00+00+010&rate=120"
                              "&lang=de")  # fmt: skip
            text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.body)).pages)
            for expected in ("Arbeitskarte (Arbeitswerte)", "Stundensatz: 120,00", "0,83 h",
                             "100,00", "Summe", "Arbeitswerte aus dem Inhaltsbestand",
                             "Fehlerspeicher lesen und Probefahrt"):  # fmt: skip
                assert expected in text, (expected, text)
            none = await b.get(f"/info/jobsheet.pdf?vin={G30}&rate=120")
            assert none.status == 400 and "no operation chosen" in none.text
            bad = await b.get(f"/info/jobsheet.pdf?vin={G30}&op=62+01+020&rate=lots")
            assert bad.status == 400 and "not an amount" in bad.text

            # the same pages for a German reader (?lang=de, then remembered): our words in
            # German, the content's own words and identifiers as the content set has them
            dtc = await b.get(f"/info/dtc?code=P12A1-00&vin={G30}&lang=de")
            assert "Fehlercode P12A1-00 (12A100)" in dtc.text
            assert f"Für das Fahrzeug {G30}" in dtc.text
            instruction = await b.get(f"/info/instructions/RI-DME-12A100?vin={G30}")
            for german in ("Anzugsdrehmoment: 8 Nm", "Steuergeräte: DME.", "Arbeitsschritte",
                           "Schaltpläne", "Arbeitspositionen"):  # fmt: skip
                assert german in instruction.text, german
            assert "Torque: " not in instruction.text and "<h2>Steps" not in instruction.text
            # the content set's own German (the sample carries both languages)
            assert "<h1>Ladedruck zu niedrig: Diagnose und Reparatur</h1>" in instruction.text
            assert "Bauteil ersetzen (Teil 9901800)" in instruction.text
            assert "Replace the component" not in instruction.text
            wiring = await b.get("/info/wiring/WD-DME-12A100")
            assert "<th>Steckverbinder</th>" in wiring.text
            assert "Anleitungen, die ihn verwenden" in wiring.text
            bulletin = await b.get(f"/info/bulletins/CAMPAIGN-0047-SAMPLE?vin={G30}")
            assert "Technische Aktion" in bulletin.text and f"Für {G30}: offen." in bulletin.text
            assert "Geltungsbereich: Typschlüssel" in bulletin.text
            part = await b.get("/info/parts/9901800")
            assert "Ersetzt 9901805." in part.text and "Teilenummer 9901800" in part.text
            ecu = await b.get("/info/parts/8487512?sw=00002B12:41.7.12&ecu=DME&version=12.05.00")
            assert "installiert 41.7.12: neuere Software 41.8.0 vorhanden" in ecu.text
            assert "Neuere Software im Paketspeicher für DME" in ecu.text
            assert '<a href="/sessions">Fernsitzungen</a>' in ecu.text  # the link kept
            found = await b.get(f"/info?q=boost&vin={G30}")
            assert "<small>Reparaturanleitung</small>" in found.text
            assert "Ladedruck zu niedrig: Diagnose und Reparatur</a>" in found.text  # its title
            german = await b.get(f"/info?q=Sitzbelegungsmatte&vin={G30}")  # German words found
            assert "CAMPAIGN-0047-SAMPLE" in german.text and "<mark>" in german.text
            sheet = await b.get(f"/info/jobsheet?vin={G30}")
            assert "(6 AW)" in sheet.text and "Stundensatz (EUR, netto)" in sheet.text
            assert "DME: Ladedrucksensor prüfen und ersetzen" in sheet.text
            none = await b.get(f"/info/jobsheet.pdf?vin={G30}&rate=120")
            assert none.status == 400 and "keine Arbeitsposition gewählt" in none.text
            comma = await b.get(f"/info/jobsheet.pdf?vin={G30}&op=62+01+020&rate=120,50")
            assert comma.headers["Content-Type"] == "application/pdf"  # the German decimal comma
            text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(comma.body)).pages)
            assert "Stundensatz: 120,50" in text, text

    asyncio.run(run())


def test_a_link_followed_before_login_is_where_the_login_goes(
    factory: sessionmaker[Session], signer: Signer, seller: Seller, shops: dict[str, Actor]
) -> None:
    """A technician who follows the tablet's link to a fault code without a portal session (a
    link from another site carries no SameSite=Strict cookie) logs in and lands on that page, not
    on the home page; the remembered page can only be a path of this site."""
    wanted = f"/info/dtc?code=P12A1-00&vin={G30}"

    async def run() -> None:
        async with portal(make_cfg(factory, signer, seller)) as (server, browsers):
            b = Browser(server)
            browsers.append(b)
            assert (await b.get(wanted)).location == "/login"
            logged_in = await b.log_in("owner1@example.com", PASSWORD)
            assert logged_in.location == wanted
            assert "/info/instructions/RI-DME-12A100" in (await b.get(logged_in.location)).text
            assert (await b.post("/logout", {})).location == "/login"
            assert (await b.log_in("owner1@example.com", PASSWORD)).location == "/"  # used once
            for hostile in ("//evil.example/x", "/\\evil.example", "https://evil.example/",
                            "evil.example", "/x\u0000"):  # fmt: skip
                other = Browser(server)
                browsers.append(other)
                other.session.cookie_jar.update_cookies({NEXT_COOKIE: hostile})
                assert (await other.log_in("owner1@example.com", PASSWORD)).location == "/"

    asyncio.run(run())
