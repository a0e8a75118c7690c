"""Tickets and entitlements with a fake clock: every way a ticket can be refused, each with its
own reason and no other change; every tariff against every job; time that cannot be turned back."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_py.errors import EntitlementError, TicketError
from firmware_py.gateway.entitlements import Entitlements
from firmware_py.gateway.events import EventBus
from firmware_py.gateway.jobs import Caller, JobRequest, JobRunner, JobState, VehicleWorker
from firmware_py.gateway.store import Store
from firmware_py.gateway.tariffs import JobKind
from firmware_py.gateway.ticket_token import TicketRefused, sign
from firmware_py.gateway.trusted_time import TrustedClock
from portal.tickets import RevocationList, issue
from tests.strategies import JSON_VALUES

DEVICE, VIN = "box-test-0001", "WBAJA71090B123456"
T0 = 1_800_000_000.0


class FakeClocks:
    def __init__(self) -> None:
        self.system = T0
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.system += seconds
        self.mono += seconds


@pytest.fixture
def clocks() -> FakeClocks:
    return FakeClocks()


@pytest.fixture
def portal_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()  # TEST key, made for this test


@pytest.fixture
def ent(tmp_path, clocks, portal_key) -> Entitlements:
    store = Store(tmp_path)
    clock = TrustedClock(store, system=lambda: clocks.system, monotonic=lambda: clocks.mono)
    return Entitlements(store, {"k1": portal_key.public_key()}, DEVICE, clock)


def ticket(key: Ed25519PrivateKey, tariff: str = "basic-1d", kid: str = "k1", **kw) -> str:
    return issue(
        key, kid, tariff=tariff, device=kw.pop("device", DEVICE), now=kw.pop("now", T0), **kw
    )


def snapshot(ent: Entitlements) -> str:
    db = ent.store.connection()
    return json.dumps(
        [
            list(map(tuple, db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()))
            for t in ("tickets", "revoked")
        ]
    )


def refused(ent: Entitlements, token: str, reason: str) -> TicketRefused:
    before = snapshot(ent)
    with pytest.raises(TicketRefused) as info:
        ent.add_ticket(token)
    assert info.value.reason == reason, str(info.value)
    assert snapshot(ent) == before  # nothing else changed
    return info.value


def test_a_good_ticket_is_added_and_allows_its_jobs(ent, portal_key) -> None:
    info = ent.add_ticket(ticket(portal_key))
    assert info.state == "not activated" and info.time_left == 86400
    decision = ent.check(JobKind.CODING, vin=VIN)
    assert decision.allowed and decision.ticket_id == info.tid
    ent.consume(decision)
    assert ent.tickets()[0].state == "valid"


def test_forged_signature(ent, portal_key) -> None:
    token = ticket(portal_key)
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["tariff"] = "basic-1y"  # upgrade the ticket by hand
    forged_body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    err = refused(ent, f"{head}.{forged_body}.{sig}", "forged")
    assert "signature is not valid" in str(err)
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    refused(ent, f"{head}.{body}.{flipped}", "forged")


def test_unknown_key_id(ent) -> None:
    other = Ed25519PrivateKey.generate()
    err = refused(ent, ticket(other, kid="k9"), "unknown_key")
    assert "k9" in str(err)


def test_signed_by_another_key_under_a_known_id(ent) -> None:
    refused(ent, ticket(Ed25519PrivateKey.generate(), kid="k1"), "forged")


def test_ticket_for_another_device(ent, portal_key) -> None:
    err = refused(ent, ticket(portal_key, device="box-9999"), "other_device")
    assert "box-9999" in str(err)


def test_ticket_for_another_vehicle(ent, portal_key) -> None:
    ent.add_ticket(ticket(portal_key, vin="WBA00000000000001"))
    decision = ent.check(JobKind.CODING, vin=VIN)
    assert (
        not decision.allowed
        and "is for vehicle WBA00000000000001, this is WBAJA71090B123456" in decision.reason
    )
    assert ent.check(JobKind.CODING, vin="WBA00000000000001").allowed


def test_expired(ent, portal_key, clocks) -> None:
    refused(ent, ticket(portal_key, not_after=int(T0 - 1)), "expired")
    ent.add_ticket(ticket(portal_key, not_after=int(T0 + 100)))
    clocks.advance(101)
    decision = ent.check(JobKind.CLEAR_FAULT_MEMORY, vin=VIN)
    assert not decision.allowed and "expired" in decision.reason


def test_duration_counts_from_activation(ent, portal_key, clocks) -> None:
    ent.add_ticket(ticket(portal_key, tariff="basic-9h"))
    clocks.advance(30 * 86400)  # lies in the drawer for a month
    decision = ent.check(JobKind.CODING, vin=VIN)
    assert decision.allowed
    ent.consume(decision)  # activated now
    clocks.advance(9 * 3600 - 1)
    assert ent.check(JobKind.CODING, vin=VIN).allowed
    clocks.advance(2)
    assert not ent.check(JobKind.CODING, vin=VIN).allowed


def test_not_yet_valid(ent, portal_key) -> None:
    ent.add_ticket(ticket(portal_key, not_before=int(T0 + 3600), not_after=int(T0 + 7200)))
    decision = ent.check(JobKind.CODING, vin=VIN)
    assert not decision.allowed and "not yet valid" in decision.reason


def test_revoked(ent, portal_key, tmp_path) -> None:
    token = ticket(portal_key)
    info = ent.add_ticket(token)
    portal_dir = tmp_path / "portal"
    portal_dir.mkdir()
    revocations = RevocationList(portal_dir)
    revocations.revoke(info.tid)
    assert ent.apply_revocations(revocations.export(portal_key, "k1")) == 1
    decision = ent.check(JobKind.CODING, vin=VIN)
    assert not decision.allowed and "revoked" in decision.reason
    ent.remove_ticket(info.tid)
    refused(ent, token, "revoked")
    old = sign("vr1", {"seq": 0, "revoked": [], "iat": 0, "kid": "k1"}, portal_key)
    assert ent.apply_revocations(old) == 0  # an older list does not undo a revocation


def test_wrong_scope_names_the_tariffs_that_would_allow_it(ent, portal_key) -> None:
    ent.add_ticket(ticket(portal_key, tariff="info-1m"))
    decision = ent.check(JobKind.PROGRAMMING, vin=VIN)
    assert not decision.allowed and "does not include programming" in decision.reason
    assert decision.would_allow[0].startswith("Basic, 9 hours (9 EUR)")


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("vt1.!!!.###", "base64"),
        ("vt1." + base64.urlsafe_b64encode(b"{not json").decode().rstrip("=") + ".AAAA", "JSON"),
        ("vt1.W10.AAAA", "not a JSON object"),
        ("hello", "not a ticket"),
        ("vt1." + "A" * 5000 + ".AAAA", "too long"),
        ("", "not a ticket"),
    ],
)
def test_malformed_tokens(ent, token: str, words: str) -> None:
    err = refused(ent, token, "malformed")
    assert words in str(err)


def test_missing_and_extra_fields(ent, portal_key) -> None:
    good = json.loads(base64.urlsafe_b64decode(ticket(portal_key).split(".")[1] + "=="))
    missing = {k: v for k, v in good.items() if k != "device"}
    assert "lacks device" in str(refused(ent, sign("vt1", missing, portal_key), "malformed"))
    extra = {**good, "admin": True}
    assert "unknown fields: admin" in str(refused(ent, sign("vt1", extra, portal_key), "malformed"))
    wrong = {**good, "uses": "many"}
    assert "wrong type" in str(refused(ent, sign("vt1", wrong, portal_key), "malformed"))


def test_system_clock_turned_back_a_day_does_not_extend_a_ticket(
    tmp_path, portal_key, clocks
) -> None:
    store = Store(tmp_path)
    clock = TrustedClock(store, system=lambda: clocks.system, monotonic=lambda: clocks.mono)
    ent = Entitlements(store, {"k1": portal_key.public_key()}, DEVICE, clock)
    ent.add_ticket(ticket(portal_key, not_after=int(T0 + 3600)))
    clocks.advance(7200)
    clock.tick()  # persisted
    assert not ent.check(JobKind.CODING, vin=VIN).allowed
    clocks.system -= 86400  # someone sets the clock back a day ...
    assert not ent.check(JobKind.CODING, vin=VIN).allowed
    # ... and reboots the box: the persisted trusted time still holds
    clocks.mono = 5.0
    rebooted = TrustedClock(store, system=lambda: clocks.system, monotonic=lambda: clocks.mono)
    assert rebooted.now() >= T0 + 7200
    ent2 = Entitlements(store, {"k1": portal_key.public_key()}, DEVICE, rebooted)
    decision = ent2.check(JobKind.CODING, vin=VIN)
    assert not decision.allowed and "expired" in decision.reason


def test_trusted_time_persists_every_minute_and_takes_portal_time(tmp_path, clocks) -> None:
    store = Store(tmp_path)
    clock = TrustedClock(store, system=lambda: clocks.system, monotonic=lambda: clocks.mono)
    clock.tick()
    persisted = lambda: store.connection().execute("SELECT highest FROM trusted_time").fetchone()[0]  # noqa: E731
    assert persisted() == T0
    clocks.advance(30)
    clock.tick()
    assert persisted() == T0  # not yet a minute
    clocks.advance(31)
    clock.tick()
    assert persisted() == T0 + 61
    assert clock.observe_signed_time(T0 + 1000)
    assert clock.now() == T0 + 1000 and persisted() == T0 + 1000
    assert not clock.observe_signed_time(T0 + 10)  # never backwards
    assert not clock.observe_signed_time(T0 + 20 * 365 * 86400)  # absurd


def test_one_use_help_desk_ticket_is_used_once(ent, portal_key) -> None:
    ent.add_ticket(ticket(portal_key, tariff="helpdesk"))
    first = ent.check(JobKind.HELP_DESK_REQUEST, vin=VIN)
    assert first.allowed
    ent.consume(first)
    second = ent.check(JobKind.HELP_DESK_REQUEST, vin=VIN)
    assert not second.allowed and "used up" in second.reason


def test_time_tickets_are_preferred_over_one_use_tickets(ent, portal_key) -> None:
    ent.add_ticket(ticket(portal_key, tariff="helpdesk"))
    ent.add_ticket(ticket(portal_key, tariff="basic-1d"))
    assert ent.check(JobKind.CODING, vin=VIN).allowed


def test_key_rotation(tmp_path, clocks) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    store = Store(tmp_path)
    clock = TrustedClock(store, system=lambda: clocks.system, monotonic=lambda: clocks.mono)
    ent = Entitlements(store, {"2025": old.public_key(), "2026": new.public_key()}, DEVICE, clock)
    ent.add_ticket(ticket(old, kid="2025"))
    ent.add_ticket(ticket(new, kid="2026", tariff="helpdesk"))
    assert len(ent.tickets()) == 2
    with pytest.raises(TicketRefused):
        ent.add_ticket(ticket(old, kid="2026"))  # the kid selects the key


# Which tariff allows which job: written out here on purpose (not derived from the code's table),
# so that a change of the product's rules shows as a failing test. Same table as docs/tickets.md.
FREE = {"read_vin", "identify", "read_fault_memory"}
BASIC = FREE | {
    "clear_fault_memory",
    "read_live_data",
    "read_did",
    "raw_uds",
    "enet_bridge",
    "coding",
    "programming",
    "service_reset",
    "service_history",
    "emissions_data",
    "vehicle_test_report",
    "repair_information",
    "map_update",
}
EXPECTED = {
    "info-1m": FREE | {"repair_information", "map_update"},
    "info-1y": FREE | {"repair_information", "map_update"},
    "basic-9h": BASIC,
    "basic-1d": BASIC,
    "basic-1w": BASIC,
    "basic-1m": BASIC,
    "basic-1y": BASIC,
    "engineering-1d": BASIC,
    "helpdesk": FREE | {"help_desk_request"},
}


@pytest.mark.parametrize("tariff", sorted(EXPECTED))
def test_each_tariff_allows_exactly_its_jobs(tmp_path, clocks, portal_key, tariff: str) -> None:
    store = Store(tmp_path)
    clock = TrustedClock(store, system=lambda: clocks.system, monotonic=lambda: clocks.mono)
    ent = Entitlements(store, {"k1": portal_key.public_key()}, DEVICE, clock)
    ent.add_ticket(ticket(portal_key, tariff=tariff))
    read = {"request": "22F190"}  # a raw request needs what it does (test_raw_requests.py)
    allowed = {job.value for job in JobKind if ent.check(job, vin=VIN, params=read).allowed}
    assert allowed == EXPECTED[tariff]


def test_without_tickets_only_free_jobs(ent) -> None:
    assert {job.value for job in JobKind if ent.check(job, vin=VIN).allowed} == FREE


def test_docs_table_matches(ent) -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "tickets.md").read_text()
    for job in JobKind:
        line = next(line for line in text.splitlines() if line.startswith(f"| `{job.value}`"))
        assert ("free" in line) == (job.value in FREE), line


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=300)
    | st.builds(
        lambda a, b: f"vt1.{a}.{b}",
        st.text(alphabet="AZaz09-_=", max_size=80),
        st.text(alphabet="AZaz09-_", max_size=90),
    )
)
def test_random_tokens_only_ever_raise_ticket_errors(tmp_path_factory, token: str) -> None:
    store = Store(tmp_path_factory.mktemp("h"))
    ent = Entitlements(
        store, {"k1": Ed25519PrivateKey.generate().public_key()}, DEVICE, TrustedClock(store)
    )
    with pytest.raises(TicketError):
        ent.add_ticket(token)


def test_a_flash_that_outlives_its_ticket_finishes_and_no_new_job_starts(
    ent, portal_key, clocks
) -> None:
    ent.add_ticket(ticket(portal_key, not_after=int(T0 + 600)))
    started, release = threading.Event(), threading.Event()

    def programming(vehicle, ctx):
        started.set()
        release.wait(5)
        return {"verified": True}

    async def main():
        worker = VehicleWorker(lambda: object())
        runner = JobRunner(
            bus=EventBus(),
            worker=worker,
            handlers={"programming": programming},
            entitlements=ent,
        )
        flash = asyncio.create_task(
            runner.run(
                JobRequest("programming", {"package": "dme.vcipkg"}, ecu="DME"),
                Caller("tablet", "t"),
            )
        )
        assert await asyncio.to_thread(started.wait, 5)
        clocks.advance(3600)  # the ticket ends in the middle of the flash
        with pytest.raises(EntitlementError, match="expired"):
            await runner.run(
                JobRequest("programming", {"package": "egs.vcipkg"}, ecu="EGS"),
                Caller("tablet", "t"),
            )
        release.set()
        job = await flash
        worker.close()
        return job

    job = asyncio.run(main())
    assert job.state is JobState.DONE and job.result == {"verified": True}


def sign_raw(prefix: str, body: bytes, key: Ed25519PrivateKey) -> str:
    """A correctly signed token around any bytes (what a portal bug or a stolen key could sign)."""
    b64 = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    sig = base64.urlsafe_b64encode(key.sign(f"{prefix}.{b64}".encode())).rstrip(b"=").decode()
    return f"{prefix}.{b64}.{sig}"


def payload_of(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e400", "1.5", "-1"])
def test_a_non_finite_or_out_of_range_iat_is_refused_and_the_clock_keeps_working(
    ent, portal_key, clocks, bad: str
) -> None:
    good = payload_of(ticket(portal_key, not_after=int(T0 + 100)))
    body = json.dumps(good).replace(f'"iat": {int(T0)}', f'"iat": {bad}').encode()
    assert bad.encode() in body
    refused(ent, sign_raw("vt1", body, portal_key), "malformed")
    for value in (float("nan"), float("inf"), float("-inf")):
        assert not ent.clock.observe_signed_time(value)
    assert ent.clock.now() == T0
    # the clock still ends tickets: a 100 s ticket is expired 101 s later
    ent.add_ticket(ticket(portal_key, not_after=int(T0 + 100)))
    clocks.advance(101)
    assert "expired" in ent.check(JobKind.CODING, vin=VIN).reason


def test_a_nan_persisted_by_an_older_version_does_not_poison_the_clock(tmp_path, clocks) -> None:
    store = Store(tmp_path)
    TrustedClock(store, system=lambda: clocks.system, monotonic=lambda: clocks.mono)
    with store.transaction() as db:
        db.execute("INSERT OR REPLACE INTO trusted_time(id, highest) VALUES (1, 'nan')")
    clock = TrustedClock(store, system=lambda: clocks.system, monotonic=lambda: clocks.mono)
    assert clock.now() == T0


def test_trusted_time_moves_only_on_statements_the_portal_signed(ent, portal_key, tmp_path) -> None:
    ent.add_ticket(ticket(portal_key, now=T0 + 500))  # its iat
    assert ent.clock.now() == T0 + 500
    revocations = RevocationList(tmp_path)
    revocations.revoke("T-NONE")
    signed = sign("vr1", {"seq": 5, "revoked": [], "iat": int(T0 + 900), "kid": "k1"}, portal_key)
    ent.apply_revocations(signed)
    assert ent.clock.now() == T0 + 900
    from portal.tickets import time_beacon

    assert ent.observe_time_beacon(time_beacon(portal_key, "k1", DEVICE, now=T0 + 1200))
    assert ent.clock.now() == T0 + 1200
    for forged in (
        time_beacon(Ed25519PrivateKey.generate(), "k1", DEVICE, now=T0 + 9000),
        time_beacon(portal_key, "k1", "box-9999", now=T0 + 9000),
        sign_raw("vb1", b'{"time": NaN, "device": "box-test-0001", "kid": "k1"}', portal_key),
    ):
        with pytest.raises(TicketRefused):
            ent.observe_time_beacon(forged)
    assert ent.clock.now() == T0 + 1200


def test_removing_and_adding_a_ticket_again_does_not_start_it_afresh(
    ent, portal_key, clocks, tmp_path
) -> None:
    day = ticket(portal_key, tariff="basic-1d")  # counted from activation, outer end a year on
    tid = ent.add_ticket(day).tid
    ent.consume(ent.check(JobKind.CODING, vin=VIN))  # activated now
    clocks.advance(2 * 86400)
    assert ent.remove_ticket(tid)
    again = ent.add_ticket(day)
    assert again.state == "expired" and again.time_left == 0
    assert not ent.check(JobKind.CODING, vin=VIN).allowed

    helpdesk = ticket(portal_key, tariff="helpdesk")
    tid = ent.add_ticket(helpdesk).tid
    ent.consume(ent.check(JobKind.HELP_DESK_REQUEST, vin=VIN))
    for _ in range(3):
        ent.remove_ticket(tid)
        assert ent.add_ticket(helpdesk).state == "used up"
        decision = ent.check(JobKind.HELP_DESK_REQUEST, vin=VIN)
        assert not decision.allowed and "used up" in decision.reason


def test_activations_and_uses_go_to_the_portal_through_the_outbox(
    ent, portal_key, tmp_path
) -> None:
    from firmware_py.gateway.outbox import Outbox
    from portal.records import RecordStore

    tid = ent.add_ticket(ticket(portal_key, tariff="basic-1d")).tid
    for _ in range(2):
        ent.consume(ent.check(JobKind.CODING, vin=VIN))
    pending = Outbox(ent.store).pending()
    assert [(r.kind, r.body["ticket"]) for r in pending] == [
        ("ticket.activated", tid),
        ("ticket.used", tid),
        ("ticket.used", tid),
    ]
    assert pending[0].body["time"] == T0 and pending[0].body["job"] == "coding"
    records = RecordStore(tmp_path / "portal.sqlite3")
    for record in pending + pending:  # delivered at least once: twice is kept once
        records.keep(DEVICE, {"id": record.id, "kind": record.kind, "body": record.body})
    assert records.ticket_usage(tid) == {"activated_at": T0, "uses": 2}


def test_usage_kept_before_the_ledger_is_adopted(tmp_path, portal_key, clocks) -> None:
    store = Store(tmp_path)
    token = ticket(portal_key, tariff="helpdesk")
    with store.transaction() as db:  # a box's database from before the ledger
        db.execute(
            "CREATE TABLE tickets (tid TEXT PRIMARY KEY, token TEXT NOT NULL, added_at REAL NOT NULL,"
            " activated_at REAL, uses_left INTEGER)"
        )
        tid = payload_of(token)["tid"]
        db.execute("INSERT INTO tickets VALUES (?,?,?,?,?)", (tid, token, T0, T0, 0))
    clock = TrustedClock(store, system=lambda: clocks.system, monotonic=lambda: clocks.mono)
    ent = Entitlements(store, {"k1": portal_key.public_key()}, DEVICE, clock)
    ent.remove_ticket(tid)
    assert ent.add_ticket(token).state == "used up"


# -- malformed input inside a correctly signed token: a clear refusal and no change ----------------
def store_snapshot(ent: Entitlements) -> str:
    db = ent.store.connection()
    tables = ("tickets", "ticket_usage", "revoked", "revocation_state", "trusted_time", "outbox")
    return json.dumps(
        [list(map(tuple, db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall())) for t in tables]
    )


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One box for many examples: every refused example must leave it exactly as it was."""
    key = Ed25519PrivateKey.generate()  # TEST key
    store = Store(tmp_path_factory.mktemp("malformed"))
    clock = TrustedClock(store, system=lambda: T0, monotonic=lambda: 1000.0)
    return Entitlements(store, {"k1": key.public_key()}, DEVICE, clock), key


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(
        sorted(
            [
                "v",
                "tid",
                "tariff",
                "scopes",
                "device",
                "vin",
                "iat",
                "nbf",
                "exp",
                "duration",
                "uses",
                "kid",
            ]
        )
    ),
    value=JSON_VALUES,
)
def test_any_value_in_any_ticket_field_is_a_clear_refusal_or_a_sound_ticket(
    shared, field: str, value
) -> None:
    ent, key = shared
    payload = payload_of(ticket(key, not_after=int(T0 + 3600)))
    payload[field] = value
    token = sign_raw("vt1", json.dumps(payload).encode(), key)
    before = store_snapshot(ent)
    try:
        info = ent.add_ticket(token)
    except TicketRefused as err:
        assert err.reason in ("malformed", "unknown_key", "other_device", "expired"), err
        assert str(err) and store_snapshot(ent) == before
    else:  # the value happened to be a valid one: a ticket with sound numbers
        assert info.valid_until is None or math.isfinite(info.valid_until)
        ent.remove_ticket(info.tid)
    assert math.isfinite(ent.clock.now())


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=33, max_value=1500).flatmap(
        lambda n: st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n, "[" * n])
    )
)
def test_deeply_nested_tickets_and_revocation_lists_are_refused(shared, body: str) -> None:
    ent, key = shared
    before = store_snapshot(ent)
    for prefix, add in (("vt1", ent.add_ticket), ("vr1", ent.apply_revocations)):
        with pytest.raises(TicketRefused, match="nested deeper|not valid JSON|too long") as info:
            add(sign_raw(prefix, body.encode(), key))
        assert info.value.reason == "malformed"
    assert store_snapshot(ent) == before


@settings(max_examples=200, deadline=None)
@given(
    seq=JSON_VALUES | st.integers(),
    revoked=JSON_VALUES | st.lists(st.text(max_size=70), max_size=3),
    iat=JSON_VALUES | st.integers(),
)
def test_malformed_revocation_lists_are_refused_and_change_nothing(
    shared, seq, revoked, iat
) -> None:
    ent, key = shared
    body = json.dumps({"seq": seq, "revoked": revoked, "iat": iat, "kid": "k1"}).encode()
    before = store_snapshot(ent)
    try:
        ent.apply_revocations(sign_raw("vr1", body, key))
    except TicketRefused as err:
        assert err.reason == "malformed" and store_snapshot(ent) == before
    assert math.isfinite(ent.clock.now())


def test_non_utf8_and_binary_payloads_are_refused(shared) -> None:
    ent, key = shared
    before = store_snapshot(ent)
    for body in (b"\xff\xfe{}", b'{"v": 1, "v": 1}', b"\x00" * 40, b'{"tid": "\xc3"}'):
        with pytest.raises(TicketRefused) as info:
            ent.add_ticket(sign_raw("vt1", body, key))
        assert info.value.reason == "malformed"
    assert store_snapshot(ent) == before


def test_a_held_use_is_consumed_once_on_delivery_and_never_before(tmp_path) -> None:
    """A help-desk request holds its one-use ticket; only the portal's acknowledgement uses it,
    and a second acknowledgement uses nothing (docs/helpdesk.md)."""
    from firmware_py.gateway.entitlements import Entitlements
    from firmware_py.gateway.store import Store
    from firmware_py.gateway.trusted_time import TrustedClock
    from portal import keys, tickets

    keys.generate(tmp_path / "k", "kid1")
    kid, key = keys.load_signing_key(tmp_path / "k")
    store = Store(tmp_path / "state")
    ent = Entitlements(store, {kid: key.public_key()}, "box-1", TrustedClock(store))
    ent.add_ticket(tickets.issue(key, kid, tariff="helpdesk", device="box-1"))
    decision = ent.check("help_desk_request", vin=None)
    assert decision.allowed
    with store.transaction() as db:
        ent.reserve(db, decision, "helpdesk-r1")
    [info] = ent.tickets()
    assert (info.state, info.uses_left) == ("held by a request waiting for the portal", 0)
    refused = ent.check("help_desk_request", vin=None)
    assert not refused.allowed and "held by a request" in refused.reason
    for expected in (True, False):  # the acknowledgement, and the same one delivered again
        with store.transaction() as db:
            assert ent.deliver(db, "helpdesk-r1") is expected
    [info] = ent.tickets()
    assert (info.state, info.uses_left) == ("used up", 0)
    used = [r for r in ent.outbox.pending() if r.kind == "ticket.used"]
    assert len(used) == 1
