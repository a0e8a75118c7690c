"""Remote sessions in the portal without a box (portal/sessions.py, portal/web/session_view.py),
on SQLite and PostgreSQL: the workshop's ticket chosen by the job's scope, the clear refusal
when it has none, nothing recorded for a refused job, and each job kind's form generated from
the typed description the box checks with. The jobs against a real box are
tests/cloud/test_portal_sessions.py."""

from __future__ import annotations

import json
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from firmware_py.errors import NotPermitted, TicketNeeded
from firmware_py.gateway.job_params import JOB_KINDS, FieldType, check_params
from firmware_py.strict_json import StrictJsonError
from portal import boxes, sessions
from portal.accounts import Actor
from portal.credit import BankTransfer, Signer, buy_ticket
from portal.db.models import RemoteJob
from portal.delivery import revoke_purchase
from portal.invoices import Seller
from portal.sessions import PORTAL_KINDS, SessionService, choose_ticket
from portal.web.session_view import ecu_from_form, job_form, params_from_form
from tests.portal.conftest import claim, sign_up

DEVICE, OTHER_DEVICE = "pi-00000000deadbeef", "pi-00000000feedface"
VIN = "WBAJA71090B123456"


@pytest.fixture
def shop(factory: sessionmaker[Session], signer: Signer, seller: Seller, operator: Actor
         ) -> dict[str, Any]:  # fmt: skip
    """Workshop 1 (credit, the box DEVICE claimed) and workshop 2 (OTHER_DEVICE)."""
    owner1, owner2 = sign_up(factory, 1), sign_up(factory, 2)
    with factory() as db, db.begin():
        for n, who, device in ((1, owner1, DEVICE), (2, owner2, OTHER_DEVICE)):
            assert who.workshop_id
            BankTransfer().book(db, operator, who.workshop_id, 1000_00, f"BANK-{n}")
            boxes.record_claim(db, who, who.workshop_id, device)
    return {"owner": owner1, "other": owner2, "signer": signer, "seller": seller,
            "operator": operator}  # fmt: skip


def _buy(factory: sessionmaker[Session], shop: dict[str, Any], tariff: str, **kw: Any) -> int:
    owner: Actor = kw.pop("owner", shop["owner"])
    return buy_ticket(factory, owner, owner.workshop_id or 0, tariff=tariff,
                      device=kw.pop("device", DEVICE), signer=shop["signer"],
                      seller=shop["seller"], **kw).id  # fmt: skip


def _chosen(factory: sessionmaker[Session], kind: str, vin: str | None = None) -> int | None:
    with factory() as db:
        chosen = choose_ticket(db, 1, DEVICE, kind, {}, vin, time.time())
        return chosen.id if chosen else None


def test_the_workshops_ticket_for_the_box_is_chosen_by_the_jobs_scope(
    factory: sessionmaker[Session], shop: dict[str, Any], tmp_path: Path
) -> None:
    assert _chosen(factory, "identify") is None  # free: no ticket used up
    with pytest.raises(TicketNeeded) as refused:
        _chosen(factory, "clear_fault_memory")
    assert "no valid ticket for box pi-00000000deadbeef that includes diagnosis" in str(
        refused.value
    ) and "Buy a ticket" in str(refused.value)
    _buy(factory, shop, "info-1m")  # repair information only
    claim(factory, shop["owner"], "pi-000000000000a2a2")
    _buy(factory, shop, "basic-1d", device="pi-000000000000a2a2")  # another box of its own
    _buy(factory, shop, "basic-1d", start=int(time.time()) + 86400)  # not valid yet
    with pytest.raises(TicketNeeded):
        _chosen(factory, "clear_fault_memory")
    day = _buy(factory, shop, "basic-1d")
    nine_hours = _buy(factory, shop, "basic-9h")
    bound = _buy(factory, shop, "basic-9h", vin="WBA00000000000000")
    assert _chosen(factory, "read_live_data", VIN) == nine_hours  # the one that ends first
    with factory() as db:
        assert choose_ticket(db, 1, DEVICE, "coding", {}, "WBA00000000000000",
                             time.time()).id in (nine_hours, bound)  # fmt: skip
    for purchase in (nine_hours, bound):
        revoke_purchase(factory, shop["operator"], purchase)
    assert _chosen(factory, "programming", VIN) == day
    # the other workshop's tickets are never its
    with factory() as db, pytest.raises(TicketNeeded):
        choose_ticket(db, shop["other"].workshop_id, OTHER_DEVICE, "coding", {}, None, time.time())


def test_a_job_is_refused_with_what_to_do_and_nothing_is_recorded(
    factory: sessionmaker[Session], shop: dict[str, Any]
) -> None:
    owner, other = shop["owner"], shop["other"]
    service = SessionService(factory, None)  # this portal has no broker link
    with factory() as db, db.begin():
        sid = sessions.open_session(db, owner, DEVICE).id
        with pytest.raises(NotPermitted, match="no box"):
            sessions.open_session(db, other, DEVICE)  # another workshop's box
    with pytest.raises(TicketNeeded, match="Buy a ticket"):
        service.start(owner, DEVICE, sid, "clear_fault_memory", "DME", {})
    with pytest.raises(StrictJsonError, match="interval must be between"):
        service.start(owner, DEVICE, sid, "read_live_data", None, {"interval": 0.01})
    with pytest.raises(NotPermitted, match="works on one ECU"):
        service.start(owner, DEVICE, sid, "coding", None, {"action": "read"})
    with pytest.raises(NotPermitted, match="not a remote job"):
        service.start(owner, DEVICE, sid, "enet_bridge", None, {})
    with pytest.raises(NotPermitted, match="no box"):  # another workshop's box and session
        service.start(other, DEVICE, sid, "identify", None, {})
    with pytest.raises(NotPermitted, match="no broker link.*--broker"):
        service.start(owner, DEVICE, sid, "identify", None, {})
    with factory() as db:
        assert sessions.jobs_of(db, sid) == []


def test_a_box_runs_a_few_jobs_at_once_and_jobs_nobody_follows_end_lost(
    factory: sessionmaker[Session], shop: dict[str, Any]
) -> None:
    owner = shop["owner"]
    service = SessionService(factory, None)
    now = time.time()
    with factory() as db, db.begin():
        sid = sessions.open_session(db, owner, DEVICE).id
        for n in range(sessions.MAX_RUNNING):  # sent by a portal process, still running
            db.add(RemoteJob(session_id=sid, workshop_id=owner.workshop_id,
                             user_id=owner.user_id, device=DEVICE, kind="read_live_data",
                             params='{"duration": 600}', state="running", summary="",
                             created_at=int(now) - n))  # fmt: skip
        # a job whose process stopped an hour ago: nobody will end it
        db.add(RemoteJob(session_id=sid, workshop_id=owner.workshop_id, user_id=owner.user_id,
                         device=DEVICE, kind="identify", params="{}", state="sent",
                         summary="", created_at=int(now) - 3600))  # fmt: skip
    with pytest.raises(NotPermitted, match="4 jobs on box pi-00000000deadbeef are still running"):
        service.start(owner, DEVICE, sid, "identify", None, {})
    with factory() as db, db.begin():  # nor in another session on the same box
        other_sid = sessions.open_session(db, owner, DEVICE).id
        assert other_sid != sid
        assert sessions.open_session(db, owner, DEVICE).id == other_sid  # no job yet: the same
    with pytest.raises(NotPermitted, match="still running"):
        service.start(owner, DEVICE, other_sid, "identify", None, {})
    with pytest.raises(NotPermitted, match="not an ECU name"):
        service.start(owner, DEVICE, sid, "identify", "DME'; --", {})
    with factory() as db:
        states = [(j.kind, j.state) for j in sessions.jobs_of(db, sid)]
    assert states == [("read_live_data", "running")] * 4 + [("identify", "lost")]
    with factory() as db, db.begin():  # an hour on, the live data jobs are overdue too
        job = sessions.jobs_of(db, sid)[0]
        assert sessions.get_job(db, owner, DEVICE, job.id, now=now + 3600).state == "lost"


class _Inputs(HTMLParser):
    """The data a browser submits for a form as it is (defaults, checked boxes, first options)."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self.names: list[str] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("name"):
            self.names.append(a["name"])
            if a.get("type") != "checkbox" or "checked" in a:
                self.data[a["name"]] = a.get("value", "on" if a.get("type") == "checkbox" else "")
        elif tag == "select":
            self._select = a["name"]
            self.names.append(a["name"])
        elif tag == "option" and self._select and self._select not in self.data:
            self.data[self._select] = a["value"]


def test_every_remote_jobs_form_is_built_from_its_typed_description() -> None:
    for kind in PORTAL_KINDS:
        spec = JOB_KINDS[kind]
        parsed = _Inputs()
        parsed.feed(job_form(spec, "/x", "token"))
        for f in spec.fields:
            shown = f"k.{f.name}.0" if f.type is FieldType.NAMED_VALUES else f"p.{f.name}"
            assert (shown in parsed.names) != f.local_only, (kind, f.name)
        assert parsed.data["kind"] == kind
        params = params_from_form(spec, parsed.data)
        if kind in ("raw_uds", "programming"):  # a request or a package must be named
            with pytest.raises(StrictJsonError):
                check_params(kind, params)
        else:
            check_params(kind, params)  # the form as it comes is what the box accepts
            for f in spec.fields:
                if f.default is not None and not f.local_only:
                    assert params.get(f.name, f.default) == f.default, (kind, f.name)
    faults = JOB_KINDS["read_fault_memory"]
    assert params_from_form(faults, {"p.status_mask": "0x0C", "b.details": "1"}) == {
        "status_mask": 12, "details": False,
    }  # fmt: skip
    live = JOB_KINDS["read_live_data"]
    assert params_from_form(live, {"p.values": "DME:4001, DME:4002", "p.duration": "5"}) == {
        "values": ["DME:4001", "DME:4002"], "duration": 5.0,
    }  # fmt: skip
    with pytest.raises(NotPermitted, match="Interval"):
        params_from_form(live, {"p.interval": "soon"})
    coding = JOB_KINDS["coding"]
    assert params_from_form(
        coding, {"p.action": "set", "k.changes.0": "DAYLIGHT", "v.changes.0": "aktiv",
                 "k.changes.1": "SPEED_LIMIT", "v.changes.1": "120"}
    ) == {"action": "set", "changes": {"DAYLIGHT": "aktiv", "SPEED_LIMIT": 120}}  # fmt: skip


def test_coding_offers_each_ecus_named_parameters_from_the_boxs_coding_description() -> None:
    from firmware_py.uds.coding import load_coding_descriptions
    from portal.web.session_view import coding_forms

    html = coding_forms("/x", "token")
    for ecu, desc in load_coding_descriptions().items():
        assert f'name="ecu" value="{ecu}"' in html
        for param in desc.params:
            assert f'name="nv.changes.{param.name}"' in html
            for value in param.values:
                assert f'<option value="{value}">' in html
    form = {"p.action": "set", "nv.changes.daytime_running_lights": "on",
            "nv.changes.comfort_closing": "", "nv.changes.welcome_light_seconds": "30"}  # fmt: skip
    params = params_from_form(JOB_KINDS["coding"], form)
    assert params == {"action": "set",
                      "changes": {"daytime_running_lights": "on", "welcome_light_seconds": 30}}  # fmt: skip
    check_params("coding", params)


@settings(max_examples=1500, deadline=None)
@example(kind="coding", form={"nv.changes.x": "²"})
@example(kind="coding", form={"nv.changes.x": "9" * 5000})
@example(kind="coding", form={"k.changes.0": "a", "v.changes.0": "²"})
@given(
    kind=st.sampled_from(PORTAL_KINDS),
    form=st.dictionaries(
        st.sampled_from([f"p.{f.name}" for s in JOB_KINDS.values() for f in s.fields]
                        + [f"b.{f.name}" for s in JOB_KINDS.values() for f in s.fields]
                        + ["k.changes.0", "v.changes.0", "nv.changes.x", "nv.changes.y", "ecu"]),
        st.text(max_size=12) | st.sampled_from(["0x1F", "1e999", "nan", "-0", "on", "true",
                                                "9" * 5000, "DME:4001,,F190", "  ", "²"]),
        max_size=6,
    ),
)  # fmt: skip
def test_any_submitted_form_is_refused_with_a_reason_or_gives_params_the_box_accepts(
    kind: str, form: dict[str, str]
) -> None:
    """Whatever a browser (or anyone) posts: a refusal that names the field, never a crash."""
    spec = JOB_KINDS[kind]
    try:
        params = params_from_form(spec, form)
        ecu_from_form(form)
        check_params(kind, params)
    except (NotPermitted, StrictJsonError) as err:
        assert str(err)


def test_a_programming_job_downloading_its_package_is_not_counted_lost() -> None:
    """A job from the portal's package store first waits up to an hour for the box's download,
    then up to half an hour for the flash: 31 minutes after its start it is not lost."""
    from portal.db.models import RemoteJob
    from portal.sessions import LOST_AFTER, PACKAGE_TIMEOUT, settle_overdue

    def job() -> RemoteJob:
        return RemoteJob(kind="programming", params=json.dumps({"package": "egs.vcipkg"}),
                         state="running", created_at=0)  # fmt: skip

    downloading, forgotten = job(), job()
    assert settle_overdue(None, [downloading], now=31 * 60 + LOST_AFTER + 1) == 0  # type: ignore[arg-type]
    assert downloading.state == "running"
    assert settle_overdue(None, [forgotten], now=PACKAGE_TIMEOUT + 1800 + LOST_AFTER + 1) == 1  # type: ignore[arg-type]
    assert forgotten.state == "lost"
