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
from portal.cli import main
from portal.db.engine import head_revision
from tests.portal.conftest import PASSWORD

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
