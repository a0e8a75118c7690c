"""Emission limit values published by the portal, end to end: ``vci-portal emission-limits
publish`` checks the file, signs it for the box and sends it through the real broker to ``vci
gateway``, which keeps it in the state directory; the next ``vci emissions`` report shows the
portal's values and version instead of the sample. A forged signature, a malformed file (at the
portal, and signed anyway at the box) and an older version are refused and the kept file stays.
The values are made up for this TEST."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from firmware_py.cloud import topics
from firmware_py.cloud.schema import Message
from firmware_py.gateway.limits_update import LIMITS_PREFIX
from firmware_py.gateway.ticket_token import sign
from portal import keys
from portal.remote import RemoteSession
from tests.cloud.conftest import BOX, USER, gateway_env, wait_online
from tests.conftest import Box, SimHandle, start_gateway_process, vci

LIMITS = """source = "portal"
version = "{version}"
allowed_incomplete = 0

[[engine]]
type_codes = ["JA71"]
engine = "B46B20 petrol (TEST values)"
emission_class = "Euro 6d"
ignition = "spark"
limit = [
  {{ name = "idle_speed", text = "Idle speed", min = 640, max = 860, unit = "rpm" }},
  {{ name = "co_raised_idle", text = "CO at raised idle", max = {co}, unit = "% vol" }},
]
"""


def publish(broker, key_dir: Path, file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portal.cli", "emission-limits", "publish", str(file),
         "--box", BOX, "--key-dir", str(key_dir), "--broker", f"127.0.0.1:{broker['port']}",
         "--pki", str(broker["pki"]), "--user", USER],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def send_signed_anyway(broker, box: Box, text: str) -> Message:
    """A statement the portal's CLI would not sign (its check bypassed): the box checks again."""
    kid, key = keys.load_signing_key(box.keys_dir)
    payload = {"device": BOX, "kid": kid, "version": "2026.13", "limits": text, "iat": 1}
    session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
    try:
        session.subscribe(topics.responses(BOX, USER))
        message = Message("emission_limits.publish", {"limits": sign(LIMITS_PREFIX, payload, key)})
        session.send(BOX, message)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            _, answer = session.inbox.get(timeout=deadline - time.monotonic())
            if answer.corr == message.id:
                return answer
        raise AssertionError("the box did not answer")
    finally:
        session.close()


def test_published_limits_reach_the_report_and_bad_ones_are_refused(
    basic_box: Box, broker, sim_process: SimHandle, tmp_path: Path
) -> None:
    kept = basic_box.root / "state" / "emission_limits.toml"
    files = tmp_path / "limits"
    files.mkdir()
    for name, version, co in (("new", "2026.12", 0.25), ("old", "2026.11", 0.3)):
        (files / f"{name}.toml").write_text(LIMITS.format(version=version, co=co))
    (files / "bad.toml").write_text(
        LIMITS.format(version="2026.13", co='"low"').replace('"JA71"', '"ja-71"')
    )
    gateway = start_gateway_process(sim_process.cli_args("doip"), gateway_env(basic_box, broker))
    try:
        session = RemoteSession("127.0.0.1", broker["port"], broker["pki"], USER)
        try:
            wait_online(session, BOX)
        finally:
            session.close()
        taken = publish(broker, basic_box.keys_dir, files / "new.toml")
        assert taken.returncode == 0, taken.stderr
        assert f"{BOX} keeps the emission limit values 2026.12" in taken.stdout
        assert kept.read_text() == (files / "new.toml").read_text()

        older = publish(broker, basic_box.keys_dir, files / "old.toml")
        assert older.returncode == 2 and "2026.11 are older than the 2026.12" in older.stderr
        keys.generate(tmp_path / "stranger", "test-portal-key")  # same kid, another key
        forged = publish(broker, tmp_path / "stranger", files / "new.toml")
        assert forged.returncode == 2 and "signature is not valid" in forged.stderr, forged
        # malformed: the portal names each problem and sends nothing; the box checks again
        bad = publish(broker, basic_box.keys_dir, files / "bad.toml")
        assert bad.returncode == 2
        assert "type code 'ja-71' is not 4 capital letters" in bad.stderr, bad.stderr
        assert "limit 'co_raised_idle': max is 'low', not a number" in bad.stderr
        answer = send_signed_anyway(broker, basic_box, (files / "bad.toml").read_text())
        assert answer.type == "error" and "type code 'ja-71'" in answer.body["message"]
        assert kept.read_text() == (files / "new.toml").read_text()
    finally:
        gateway.stop()

    proc = vci("emissions", "--json", *sim_process.cli_args("doip"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    limits = json.loads(proc.stdout)["data"]["limits"]
    assert (limits["source"], limits["version"]) == ("portal", "2026.12")
    assert limits["engine"]["limit"][1]["max"] == 0.25
    text = vci("emissions", *sim_process.cli_args("doip"))
    assert "source: portal (2026.12)" in text.stdout and "SAMPLE" not in text.stdout, text.stdout
