"""Pairing logic with explicit ``now``: button, label code, window, rate limits, sessions."""

from __future__ import annotations

import pytest

from firmware_py.gateway.store import Store
from firmware_py.web.pairing import Pairing, PairingError

CODE = "K7Q2M9"  # test material: a label code made up for these tests


@pytest.fixture
def pairing(tmp_path) -> Pairing:
    return Pairing(Store(tmp_path), CODE, window=60, max_code_attempts=3, lockout=600)


def test_button_within_the_window_pairs_the_asking_tablet(pairing: Pairing) -> None:
    rid, claim = pairing.request("Werkstatt-Tablet 1", now=1000)
    assert pairing.collect(rid, claim, now=1001) is None  # still waiting
    assert pairing.collect(rid, claim, now=1029) is None  # the page polls while it waits
    code = pairing.pending(rid).short_code
    assert pairing.press_button(now=1030) == f"Werkstatt-Tablet 1 ({code})"
    token, tablet = pairing.collect(rid, claim, now=1031)
    assert tablet.how == "button" and tablet.name == "Werkstatt-Tablet 1"
    assert pairing.authenticate(token, now=2000) == pairing.authenticate(token, now=2000)
    assert pairing.authenticate(token, now=2000).id == tablet.id
    assert [t.id for t in pairing.tablets()] == [tablet.id]


def test_button_after_the_window_pairs_nobody(pairing: Pairing) -> None:
    rid, claim = pairing.request("t", now=1000)
    with pytest.raises(PairingError, match="no tablet is waiting"):
        pairing.press_button(now=1061)
    with pytest.raises(PairingError, match="expired after 60 s"):
        pairing.collect(rid, claim, now=1062)
    assert pairing.tablets() == []


def test_two_waiting_tablets_are_told_to_type_the_label_code(pairing: Pairing) -> None:
    mine = pairing.request("mine", now=1000, client="10.0.0.5")
    other = pairing.request("neighbour", now=1001, client="10.0.0.9")
    for rid, claim in (mine, other):
        assert pairing.collect(rid, claim, now=1001) is None
    with pytest.raises(PairingError, match="2 tablets are waiting"):
        pairing.press_button(now=1002)
    for rid, claim in (mine, other):  # nobody approved, nobody refused
        assert pairing.collect(rid, claim, now=1003) is None
        assert pairing.pending(rid).use_code
    pairing.enter_code(mine[0], CODE, now=1004, client="10.0.0.5")
    token, tablet = pairing.collect(*mine, now=1005)
    assert tablet.name == "mine" and tablet.how == "code"


def test_the_button_pairs_the_tablet_that_waits_despite_requests_that_nobody_collects(
    pairing: Pairing,
) -> None:
    for i in range(100):  # an attacker's requests from many addresses; they do not poll
        pairing.request(f"x{i}", now=1000, client=f"10.0.1.{i}")
    rid, claim = pairing.request("mine", now=1010, client="10.0.0.5")
    assert pairing.collect(rid, claim, now=1020) is None
    assert pairing.press_button(now=1021).startswith("mine")
    assert pairing.collect(rid, claim, now=1022)[1].how == "button"


def test_label_code_pairs_and_wrong_codes_lock_out(pairing: Pairing) -> None:
    rid, claim = pairing.request("t", now=1000)
    for _ in range(3):
        with pytest.raises(PairingError, match="wrong code"):
            pairing.enter_code(rid, "000000", now=1001)
    with pytest.raises(PairingError, match="too many wrong codes"):
        pairing.enter_code(rid, CODE, now=1002)  # even the right code, while locked
    other, other_claim = pairing.request("t", now=1003, client="10.0.0.7")
    pairing.enter_code(other, CODE, now=1004, client="10.0.0.7")  # another address is not locked
    assert pairing.collect(other, other_claim, now=1005)[1].how == "code"
    rid2, claim2 = pairing.request("t", now=1700)  # lockout over after 600 s
    pairing.enter_code(rid2, CODE.lower(), now=1701)
    token, tablet = pairing.collect(rid2, claim2, now=1702)
    assert tablet.how == "code"


def test_only_the_asking_tablet_collects_the_session(pairing: Pairing) -> None:
    rid, claim = pairing.request("t", now=1000)
    assert pairing.collect(rid, claim, now=1000) is None
    pairing.press_button(now=1001)
    with pytest.raises(PairingError, match="another tablet"):
        pairing.collect(rid, "guessed-claim", now=1002)


def test_forged_expired_and_unpaired_sessions_are_refused(pairing: Pairing) -> None:
    rid, claim = pairing.request("t", now=1000)
    assert pairing.collect(rid, claim, now=1000) is None
    pairing.press_button(now=1001)
    token, tablet = pairing.collect(rid, claim, now=1002)
    assert pairing.authenticate("forged" + token[6:], now=1003) is None
    assert pairing.authenticate(None, now=1003) is None
    assert pairing.authenticate("x" * 5000, now=1003) is None
    assert pairing.authenticate(token, now=1002 + 91 * 86400) is None  # unused for 91 days
    assert pairing.unpair(tablet.id)
    assert pairing.authenticate(token, now=1004) is None


def test_pending_requests_are_one_per_client_and_bounded(pairing: Pairing) -> None:
    first = pairing.request("t", now=1000, client="10.0.0.5")
    second = pairing.request("t", now=1001, client="10.0.0.5")  # replaces the first
    assert pairing.pending(first[0]) is None and pairing.pending(second[0]) is not None
    for i in range(pairing.max_pending + 50):  # never refused; the oldest go
        pairing.request("x", now=1002 + i, client=f"10.1.{i // 250}.{i % 250}")
    assert len(pairing._pending) == pairing.max_pending
    mine = pairing.request("mine", now=2000, client="10.0.0.6")
    pairing.enter_code(mine[0], CODE, now=2001, client="10.0.0.6")
    assert pairing.collect(*mine, now=2002)[1].name == "mine"


def test_sessions_survive_a_restart(tmp_path) -> None:
    first = Pairing(Store(tmp_path), CODE)
    rid, claim = first.request("t", now=1000)
    assert first.collect(rid, claim, now=1000) is None
    first.press_button(now=1001)
    token, tablet = first.collect(rid, claim, now=1002)
    again = Pairing(Store(tmp_path), CODE)
    assert again.authenticate(token, now=1003).id == tablet.id


def test_pairing_refusals_read_in_german_for_a_german_tablet(pairing: Pairing) -> None:
    from firmware_py.i18n import language

    german = language("de")
    rid, _claim = pairing.request("t", now=1000)
    with pytest.raises(PairingError) as wrong:
        pairing.enter_code(rid, "000000", now=1001)
    assert (
        str(wrong.value) == "wrong code. Type the code printed on the box's label"
    )  # English kept
    assert "Code" in wrong.value.localized(german)
    assert "wrong code" not in wrong.value.localized(german)
    for _ in range(2):
        with pytest.raises(PairingError):
            pairing.enter_code(rid, "000000", now=1002)
    with pytest.raises(PairingError) as locked:
        pairing.enter_code(rid, CODE, now=1003)
    assert "10 minutes" in str(locked.value)
    assert "10 Minuten" in locked.value.localized(german)
    for client in ("10.0.0.5", "10.0.0.6"):  # two tablets still waiting
        waiting, waiting_claim = pairing.request(client, now=2000, client=client)
        assert pairing.collect(waiting, waiting_claim, now=2000) is None
    with pytest.raises(PairingError) as two:
        pairing.press_button(now=2001)
    assert str(two.value).startswith("2 tablets are waiting")
    assert two.value.localized(german).startswith("2 Tablets")
