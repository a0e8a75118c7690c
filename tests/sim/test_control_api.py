"""The simulator's control API (``vci sim`` in its own process) takes changes only as JSON from
no other web page: a cross-origin ``text/plain`` POST (which a browser sends without asking) and a
foreign ``Origin`` are refused, and the vehicle does not change."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        text = err.read()
        return err.code, json.loads(text) if text.startswith(b"{") else {"text": text}


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": "text/plain", "Origin": "http://evil.example"},
        {"Content-Type": "application/json", "Origin": "http://evil.example"},
        {"Content-Type": "application/json", "Origin": "null"},
        {},
    ],
)
def test_cross_origin_and_non_json_posts_are_refused(sim_process, headers) -> None:
    before = sim_process.state()["battery_voltage"]
    status, body = _post(sim_process.control_url + "/battery", b'{"volts": 9.1}', headers)
    assert status in (403, 415), (status, body)
    assert sim_process.state()["battery_voltage"] == before


def test_bad_json_is_a_400_and_changes_nothing(sim_process) -> None:
    before = sim_process.state()["battery_voltage"]
    json_ct = {"Content-Type": "application/json"}
    for raw in (b'{"volts": NaN}', b'{"volts": "x"}', b"[" * 5000, b"\xff\xfe", b'{"volts": true}'):
        status, _ = _post(sim_process.control_url + "/battery", raw, json_ct)
        assert status == 400, raw[:20]
    assert sim_process.state()["battery_voltage"] == before
    status, body = _post(sim_process.control_url + "/battery", b'{"volts": 12.2}', json_ct)
    assert status == 200 and body["battery_voltage"] == 12.2
