"""``vci-portal db|workshop|user|credit`` and ``ticket buy`` as a process, on both databases."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pypdf import PdfReader

from firmware_py.gateway.ticket_token import parse_ticket
from portal import keys
from portal.accounts import Actor, find_user
from portal.cli import main
from portal.db.engine import head_revision, open_database
from tests.portal.conftest import PASSWORD, claim

SELLER = """[seller]
name = "VCI Portal GmbH"
street = "Hauptstr. 1"
postcode = "80331"
city = "Muenchen"
country = "DE"
vat_id = "DE999999999"
iban = "DE02120300000000202051"
"""


def test_cli_signup_top_up_buy(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole flow through ``main()`` in this process (a process per command costs seconds;
    the last test runs one as a process)."""
    monkeypatch.setenv("VCI_PORTAL_STATE_DIR", str(tmp_path / "state"))

    def portal(*args: str, stdin: str = "", ok: bool = True) -> str:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main([*args, "--db", db_url])
        out = capsys.readouterr()
        assert (code == 0) == ok, out.err
        return out.out + out.err

    assert f"revision {head_revision()}" in portal("db", "upgrade")
    assert "workshop 1 signed up" in portal(
        "workshop", "signup", "--name", "Werkstatt Nord", "--street", "Ring 2", "--postcode",
        "20095", "--city", "Hamburg", "--country", "de", "--vat-id", "DE 123 456 789",
        "--owner-login", "chef@nord.example", "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    portal("user", "add", "--role", "operator", "--login", "ops@portal.example",
           "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    assert "technician" in portal(
        "user", "add", "--workshop", "DE123456789", "--user", "chef@nord.example", "--login",
        "tech@nord.example", "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert "only the portal's operator" in portal(
        "credit", "book", "--workshop", "1", "--amount", "30", "--reference", "R1",
        "--user", "chef@nord.example", ok=False,
    )  # fmt: skip
    assert "credit now 30.00 EUR" in portal(
        "credit", "book", "--workshop", "1", "--amount", "30.00", "--reference", "R1",
        "--user", "ops@portal.example",
    )  # fmt: skip
    assert "booked already" in portal(
        "credit", "book", "--workshop", "1", "--amount", "30.00", "--reference", "R1",
        "--user", "ops@portal.example", ok=False,
    )  # fmt: skip
    engine, factory = open_database(db_url)  # the box, as if claimed on the portal's pages
    with factory() as session:
        chef = find_user(session, "chef@nord.example")
        assert chef is not None
    claim(factory, Actor.of(chef), "pi-0000cafe")
    engine.dispose()
    kid = keys.generate(tmp_path / "keys", "portal-test")
    (tmp_path / "state").mkdir(exist_ok=True)
    (tmp_path / "state" / "portal.toml").write_text(SELLER)
    out = portal(
        "ticket", "buy", "--workshop", "1", "--user", "tech@nord.example", "--tariff",
        "basic-1d", "--box", "pi-0000cafe", "--vin", "WBA3A5C50DF123456",
        "--key-dir", str(tmp_path / "keys"),
    )  # fmt: skip
    token, invoice_line = out.strip().splitlines()
    public = load_pem_public_key((tmp_path / "keys" / f"{kid}.pub").read_bytes())
    assert isinstance(public, Ed25519PublicKey)
    ticket = parse_ticket(token, {kid: public})
    assert (ticket.tariff, ticket.device, ticket.vin) == (
        "basic-1d",
        "pi-0000cafe",
        "WBA3A5C50DF123456",
    )
    path = Path(invoice_line.split(": ", 1)[1])
    assert path.parent == tmp_path / "state" / "invoices"
    text = PdfReader(io.BytesIO(path.read_bytes())).pages[0].extract_text()
    assert "Werkstatt Nord" in text and "DE123456789" in text and "30.00 EUR" in text
    assert "does not cover" in portal(
        "ticket", "buy", "--workshop", "1", "--user", "tech@nord.example", "--tariff",
        "basic-9h", "--box", "pi-0000cafe", "--key-dir", str(tmp_path / "keys"), ok=False,
    )  # fmt: skip
    shown = portal("credit", "show", "--workshop", "1", "--user", "chef@nord.example")
    assert "top_up" in shown and "-30.00 EUR" in shown and "balance 0.00 EUR" in shown
    assert "disabled" in portal("workshop", "disable", "1", "--user", "ops@portal.example")
    assert "DISABLED" in portal("workshop", "list", "--user", "ops@portal.example")


def test_cli_database_errors_say_what_to_do(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "portal.cli", "credit", "show", "--workshop", "1", "--user", "x",
         "--db", f"postgresql://nobody@/none?host={tmp_path}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "error: the portal's database" in done.stderr and "VCI_PORTAL_DB" in done.stderr
    assert "Traceback" not in done.stderr


def test_vci_portal_revoke_queues_the_list_for_a_bought_tickets_box(
    factory,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
    seller,  # type: ignore[no-untyped-def]
) -> None:
    """``vci-portal revoke TID`` of a ticket bought on the portal sends the revocation list to
    the ticket's box (as ``ticket revoke PURCHASE`` does); a ticket the portal did not sell
    (issued on the command line) is only put on the list."""
    from sqlalchemy import select

    from portal.credit import BankTransfer, Signer, buy_ticket
    from portal.db.models import Delivery
    from tests.portal.conftest import FAST_HASHER, claim, sign_up

    kid = keys.generate(tmp_path / "keys", "portal-test")
    signer = Signer(*keys.load_signing_key(tmp_path / "keys", kid))
    owner = sign_up(factory, 1)
    with factory() as session, session.begin():
        from portal import accounts

        ops = accounts.Actor.of(accounts.add_operator(
            session, login="ops@portal.example", name="Ops", password=PASSWORD,
            hasher=FAST_HASHER))  # fmt: skip
        BankTransfer().book(session, ops, owner.workshop_id, 100_00, "R1")  # type: ignore[arg-type]
    claim(factory, owner, "pi-00000000deadbeef")
    bought = buy_ticket(factory, owner, owner.workshop_id or 0, tariff="basic-9h",
                        device="pi-00000000deadbeef", signer=signer, seller=seller)  # fmt: skip
    assert main(["revoke", bought.ticket_id, "--key-dir", str(tmp_path / "keys"),
                 "--db", db_url]) == 0  # fmt: skip
    assert "goes to box pi-00000000deadbeef" in capsys.readouterr().out
    with factory() as session:
        sent = [(d.kind, d.device, d.state) for d in session.scalars(select(Delivery))
                if d.kind == "revocation"]  # fmt: skip
    assert sent == [("revocation", "pi-00000000deadbeef", "pending")]
    assert main(["revoke", "not-sold-here", "--key-dir", str(tmp_path / "keys"),
                 "--db", db_url]) == 0  # fmt: skip
    assert "no purchase" in capsys.readouterr().out
