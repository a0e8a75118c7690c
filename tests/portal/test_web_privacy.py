"""Data protection on the portal's pages (portal/web/privacy_pages.py), over a real socket on
SQLite and PostgreSQL: the owner exports and erases a car's data of its own workshop only, the
operator every workshop's; a workshop's archive is its owner's alone (another workshop's id
answers as one that does not exist); deleting the account needs the password typed again (or
the VAT id, for the operator), and afterwards nobody of the workshop can log in."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile

from sqlalchemy.orm import Session, sessionmaker

from portal import vehicle_data
from portal.credit import Signer
from portal.db.models import Workshop
from portal.invoices import Seller
from portal.web.guard import WebConfig
from tests.portal.conftest import FAST_HASHER, PASSWORD
from tests.portal.test_vehicle_data import KEPT, VIN, naming
from tests.portal.test_vehicle_data import world as vehicle_world  # noqa: F401
from tests.portal.web_client import Browser, portal


def test_privacy_pages(factory: sessionmaker[Session], signer: Signer, seller: Seller,
                       vehicle_world: dict) -> None:  # type: ignore[type-arg]  # noqa: F811  # fmt: skip
    cfg = WebConfig(factory, signer, seller, hasher=FAST_HASHER)

    async def run() -> None:
        async with portal(cfg) as (server, browsers):
            owner1, owner2, ops = Browser(server), Browser(server), Browser(server)
            browsers.extend([owner1, owner2, ops])
            for browser, name in ((owner1, "owner1@example.com"), (owner2, "owner2@example.com"),
                                  (ops, "ops@portal.example")):  # fmt: skip
                assert (await browser.log_in(name, PASSWORD)).status == 303
            shown = await owner1.get("/privacy")
            assert shown.status == 200 and "/privacy/workshops/1/export.zip" in shown.text
            assert 'href="/privacy"' in shown.text  # in the navigation

            exported = await owner1.post("/privacy/vehicle/export", {"vin": VIN})
            assert exported.status == 200
            tables = json.loads(exported.body)["tables"]
            assert {r["workshop_id"] for r in tables["remote_sessions"]} == {1}
            bad = await owner1.post("/privacy/vehicle/export", {"vin": "not a vin"})
            assert bad.status == 400 and "is not a VIN" in bad.text
            assert (await owner1.post("/privacy/vehicle/erase", {"vin": VIN})).status == 400
            unnamed = await owner1.post("/privacy/vehicle/erase?lang=de", {"vin": VIN})
            assert unnamed.status == 400 and "wer die Löschung verlangt hat" in unnamed.text
            await owner1.get("/privacy?lang=en")
            erased = await owner1.post("/privacy/vehicle/erase",
                                       {"vin": VIN, "asked_by": "Frau Muster"})  # fmt: skip
            assert erased.status == 200 and "Erased" in erased.text, erased.text
            with factory() as db:
                left = vehicle_data.find(db, VIN).rows["remote_sessions"]
                assert {r["workshop_id"] for r in left} == {2}
            erased = await ops.post("/privacy/vehicle/erase", {"vin": VIN, "asked_by": "x"})
            assert erased.status == 200 and set(naming(factory, VIN)) <= KEPT

            archive = await owner1.get("/privacy/workshops/1/export.zip")
            assert archive.status == 200
            with zipfile.ZipFile(io.BytesIO(archive.body)) as z:
                assert "remote_sessions.json" in z.namelist()
            theirs = await owner2.get("/privacy/workshops/1/export.zip")
            none = await owner2.get("/privacy/workshops/999999/export.zip")
            assert theirs.status == none.status == 404 and theirs.text == none.text
            assert (await ops.get("/privacy/workshops/1/export.zip")).status == 200
            refused = await owner2.post("/privacy/workshops/1/delete", {"password": PASSWORD})
            assert refused.status == 404

            wrong = await owner1.post("/privacy/workshops/1/delete", {"password": "wrong one 12"})
            assert wrong.status == 401
            deleted = await owner1.post("/privacy/workshops/1/delete", {"password": PASSWORD})
            assert deleted.status == 200 and "§147 AO" in deleted.text
            assert (await owner1.get("/dashboard")).status == 303
            assert (await Browser(server).log_in("owner1@example.com", PASSWORD)).status == 401
            # the operator's results in German
            mismatch = await ops.post("/privacy/workshops/2/delete?lang=de",
                                      {"confirm": "DE100000001"})  # fmt: skip
            assert mismatch.status == 400 and "stimmt nicht mit der der Werkstatt" in mismatch.text
            done = await ops.post("/privacy/workshops/2/delete", {"confirm": "DE 100000002"})
            assert done.status == 200 and "Das Konto der Werkstatt ist gelöscht" in done.text
            assert "§147 AO" in done.text
            assert (await owner2.get("/dashboard")).status == 303

    asyncio.run(run())
    with factory() as db:
        assert all(db.get(Workshop, n).deleted_at for n in (1, 2))  # type: ignore[union-attr]
