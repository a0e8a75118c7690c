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
    assert pairing.press_button(now=1030) == "Werkstatt-Tablet 1"
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


def test_two_tablets_asking_at_once_are_both_refused(pairing: Pairing) -> None:
    a = pairing.request("mine", now=1000)
    b = pairing.request("neighbour", now=1001)
    with pytest.raises(PairingError, match="two tablets"):
        pairing.press_button(now=1002)
    for rid, claim in (a, b):
        with pytest.raises(PairingError, match="two tablets"):
            pairing.collect(rid, claim, now=1003)


def test_label_code_pairs_and_wrong_codes_lock_out(pairing: Pairing) -> None:
    rid, claim = pairing.request("t", now=1000)
    for _ in range(3):
        with pytest.raises(PairingError, match="wrong code"):
            pairing.enter_code(rid, "000000", now=1001)
    with pytest.raises(PairingError, match="too many wrong codes"):
        pairing.enter_code(rid, CODE, now=1002)  # even the right code, while locked
    rid2, claim2 = pairing.request("t", now=1700)  # lockout over after 600 s
    pairing.enter_code(rid2, CODE.lower(), now=1701)
    token, tablet = pairing.collect(rid2, claim2, now=1702)
    assert tablet.how == "code"


def test_only_the_asking_tablet_collects_the_session(pairing: Pairing) -> None:
    rid, _claim = pairing.request("t", now=1000)
    pairing.press_button(now=1001)
    with pytest.raises(PairingError, match="another tablet"):
        pairing.collect(rid, "guessed-claim", now=1002)


def test_forged_expired_and_unpaired_sessions_are_refused(pairing: Pairing) -> None:
    rid, claim = pairing.request("t", now=1000)
    pairing.press_button(now=1001)
    token, tablet = pairing.collect(rid, claim, now=1002)
    assert pairing.authenticate("forged" + token[6:], now=1003) is None
    assert pairing.authenticate(None, now=1003) is None
    assert pairing.authenticate("x" * 5000, now=1003) is None
    assert pairing.authenticate(token, now=1002 + 91 * 86400) is None  # unused for 91 days
    assert pairing.unpair(tablet.id)
    assert pairing.authenticate(token, now=1004) is None


def test_pending_requests_are_bounded(pairing: Pairing) -> None:
    for i in range(pairing.max_pending):
        pairing.request(f"t{i}", now=1000)
    with pytest.raises(PairingError, match="too many pairing requests"):
        pairing.request("one more", now=1000)


def test_sessions_survive_a_restart(tmp_path) -> None:
    first = Pairing(Store(tmp_path), CODE)
    rid, claim = first.request("t", now=1000)
    first.press_button(now=1001)
    token, tablet = first.collect(rid, claim, now=1002)
    again = Pairing(Store(tmp_path), CODE)
    assert again.authenticate(token, now=1003).id == tablet.id
