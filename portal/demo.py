"""The portal demo's data (scripts/portal-demo): a demo workshop with its owner, an operator, the
workshop's credit booked by bank transfer, the demo box claimed for the workshop with the code on
its label (the box enrols by itself and gets its certificate at its next poll) and a "Basic, 1 day"
ticket bought for it (the portal's delivery worker sends it to the box).

Idempotent: what exists already is kept, so a second start of the demo finds its workshop, box
and ticket again (a new ticket is bought only when the last one has run out). It uses the
portal's own services (accounts, credit, enrolment, boxes), as the pages do.

    python -m portal.demo --db URL --pki PKI --key-dir KEYS --config portal.toml \\
        --device ID --label-code CODE --password-file FILE
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import PaymentError, PortalError
from portal import accounts, boxes, credit, keys
from portal.accounts import Actor, WorkshopData
from portal.credit import BankTransfer, Signer
from portal.db.engine import open_database
from portal.db.models import Purchase, WorkshopBox
from portal.enrolment import Enrolment
from portal.invoices import Seller

OWNER, OPERATOR = "owner@demo.example", "operator@demo.example"
WORKSHOP = WorkshopData(
    name="Demo-Werkstatt GmbH", street="Werkstrasse 1", postcode="80331", city="Muenchen",
    country="DE", vat_id="DE000000001",
)  # fmt: skip
TOP_UP_CENTS, TOP_UP_REFERENCE = 200_00, "DEMO bank transfer 1"
TARIFF = "basic-1d"


def seed(args: argparse.Namespace) -> None:
    password = args.password_file.read_text().strip()
    engine, factory = open_database(args.db, migrate=True)
    try:
        with factory() as session, session.begin():
            if accounts.find_user(session, OPERATOR) is None:
                accounts.add_operator(session, login=OPERATOR, name="Demo operator",
                                      password=password)  # fmt: skip
            if accounts.find_user(session, OWNER) is None:
                accounts.sign_up(session, WORKSHOP, owner_login=OWNER, owner_name="Demo owner",
                                 password=password)  # fmt: skip
        with factory() as session:
            owner_user, operator_user = (accounts.find_user(session, OWNER),
                                         accounts.find_user(session, OPERATOR))  # fmt: skip
            assert owner_user is not None and operator_user is not None
            owner, operator = Actor.of(owner_user), Actor.of(operator_user)
        workshop = owner.workshop_id or 0
        try:
            with factory() as session, session.begin():
                BankTransfer().book(session, operator, workshop, TOP_UP_CENTS, TOP_UP_REFERENCE)
            print(f"booked {TOP_UP_CENTS // 100} EUR for the demo workshop", flush=True)
        except PaymentError:
            pass  # booked at an earlier start
        _claim(factory, args, owner, workshop)
        _buy(factory, args, owner, workshop)
    finally:
        engine.dispose()


def _claim(
    factory: sessionmaker[Session], args: argparse.Namespace, owner: Actor, workshop: int
) -> None:
    with factory() as session:
        if session.scalar(select(WorkshopBox).where(WorkshopBox.device == args.device)):
            return
    enrolment = Enrolment(factory, args.pki)
    try:
        deadline = time.monotonic() + args.wait
        while args.device not in dict(enrolment.waiting()):
            if time.monotonic() > deadline:
                sys.exit(f"the box {args.device} did not ask to be enrolled within {args.wait} s:"
                         " see its log (gateway.log)")  # fmt: skip
            time.sleep(0.5)
        enrolment.claim(
            args.device, args.label_code, workshop_id=workshop,
            then=lambda session, _cert: boxes.record_claim(session, owner, workshop, args.device,
                                                           "Demo box"),
        )  # fmt: skip
    finally:
        enrolment.close()
    print(f"claimed the box {args.device} for the demo workshop", flush=True)


def _buy(
    factory: sessionmaker[Session], args: argparse.Namespace, owner: Actor, workshop: int
) -> None:
    now = int(time.time())
    with factory() as session:
        valid = session.scalar(
            select(Purchase.id).where(
                Purchase.workshop_id == workshop, Purchase.device == args.device,
                Purchase.ends_at > now,
            )
        )  # fmt: skip
    if valid is not None:
        return
    kid, key = keys.load_signing_key(args.key_dir)
    bought = credit.buy_ticket(
        factory, owner, workshop, tariff=TARIFF, device=args.device, signer=Signer(kid, key),
        seller=Seller.load(args.config),
    )  # fmt: skip
    print(f"bought a {TARIFF} ticket for {args.device} (purchase {bought.id})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portal.demo", description=__doc__)
    parser.add_argument("--db", required=True, help="the portal's database URL")
    parser.add_argument("--pki", required=True, type=Path, help="the portal's CA (claims)")
    parser.add_argument("--key-dir", required=True, type=Path, help="ticket signing keys")
    parser.add_argument("--config", required=True, type=Path, help="portal.toml ([seller])")
    parser.add_argument("--device", required=True, help="the demo box's device id")
    parser.add_argument("--label-code", required=True, help="the code on the demo box's label")
    parser.add_argument("--password-file", required=True, type=Path,
                        help="the demo users' password")  # fmt: skip
    parser.add_argument("--wait", type=float, default=60,
                        help="seconds to wait for the box's enrolment request")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        seed(args)
    except PortalError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
