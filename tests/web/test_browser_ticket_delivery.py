"""A ticket bought on the portal appears on the tablet's ticket list by itself, in a real browser
(Chromium driven by Playwright): the portal's delivery worker sends it to ``vci gateway`` over the
real mosquitto, the box adds it and tells the page (``tickets.changed``); nobody reloads."""

from __future__ import annotations

import threading
from typing import Any

from portal.delivery import DeliveryWorker
from portal.remote import RemoteSession
from tests.cloud.conftest import USER, portal_db, shop, wait_until  # noqa: F401
from tests.cloud.test_ticket_delivery import _buy, _deliveries
from tests.web.test_browser import shot, tab
from tests.web.test_browser_service import broker, tablet  # noqa: F401

ROWS = "section.card table tbody tr"


def test_a_bought_ticket_appears_on_the_tablet_without_a_reload(
    tablet: dict[str, Any],  # noqa: F811 - the imported fixture
    shop: dict[str, Any],  # noqa: F811
) -> None:
    page, broker_ = tablet["page"], tablet["broker"]
    tab(page, "tickets")
    page.wait_for_function(f"document.querySelectorAll({ROWS!r}).length === 2", timeout=10_000)
    bought = _buy(shop, tariff="engineering-1d")
    session = RemoteSession("127.0.0.1", broker_["port"], broker_["pki"], USER)
    worker = DeliveryWorker(shop["factory"], session, shop["revocation"])
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, args=(stop, 0.2), daemon=True)
    runner.start()
    try:
        wait_until(
            lambda: _deliveries(shop["factory"], bought) == [("ticket", "delivered")],
            30,
            "the ticket delivered",
        )
        page.wait_for_selector(f"{ROWS} >> text=Engineering, 1 day", timeout=10_000)
        assert page.locator(ROWS).count() == 3
        shot(page, "ticket-delivered")
    finally:
        stop.set()
        runner.join(timeout=10)
        session.close()
