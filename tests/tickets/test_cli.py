"""Tickets end to end with the real commands: vci-portal issues, vci ticket adds/lists/removes,
and a paid job on the CLI is denied without a ticket and allowed with one."""

from __future__ import annotations

import json
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_py.cli.ticket_commands import read_token_file
from firmware_py.errors import TicketError
from tests.conftest import Box


def portal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portal.cli", *args], capture_output=True, text=True, timeout=30
    )


def test_issue_add_list_remove(box: Box) -> None:
    issued = portal(
        "ticket",
        "issue",
        "--tariff",
        "basic-1w",
        "--device",
        box.device,
        "--key-dir",
        str(box.keys_dir),
    )
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip()
    token_file = box.root / "ticket.txt"
    token_file.write_text(token + "\n")
    added = box.vci("--json", "ticket", "add", "--file", str(token_file))
    assert added.returncode == 0, added.stderr
    tid = json.loads(added.stdout)["tid"]
    listed = json.loads(box.vci("--json", "ticket", "list").stdout)
    assert [(t["tid"], t["tariff"], t["state"]) for t in listed] == [
        (tid, "basic-1w", "not activated")
    ]
    assert "Basic, 1 week" in box.vci("ticket", "list").stdout
    assert box.vci("ticket", "remove", tid).returncode == 0
    assert json.loads(box.vci("--json", "ticket", "list").stdout) == []
    missing = box.vci("ticket", "remove", tid)
    assert missing.returncode == 2 and "no ticket" in missing.stderr


def test_refused_tickets_say_why(box: Box) -> None:
    other = box.issue("basic-1d", device="box-9999")
    proc = box.vci("--json", "ticket", "add", other)
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["reason"] == "other_device"
    proc = box.vci("ticket", "add", "vt1.garbage")
    assert proc.returncode == 2 and "not a ticket" in proc.stderr


def test_revocation_list_from_the_portal(box: Box) -> None:
    proc = box.vci("--json", "ticket", "add", box.issue("basic-1d"))
    tid = json.loads(proc.stdout)["tid"]
    assert portal("revoke", tid, "--key-dir", str(box.keys_dir)).returncode == 0
    exported = portal("revocations", "export", "--key-dir", str(box.keys_dir))
    path = box.root / "revocations.txt"
    path.write_text(exported.stdout)
    assert "1 ticket(s) revoked" in box.vci("ticket", "revocations", str(path)).stdout
    assert json.loads(box.vci("--json", "ticket", "list").stdout)[0]["state"] == "revoked"


def test_paid_job_denied_without_a_ticket_and_allowed_with_one(box: Box, sim_process) -> None:
    flags = sim_process.cli_args("doip")
    denied = box.vci("--json", "dtc", "clear", "--yes", *flags)
    assert denied.returncode == 2
    err = json.loads(denied.stdout)
    assert (
        err["error"] == "not_entitled"
        and "no ticket on this box includes diagnosis" in err["message"]
    )
    assert "Basic, 9 hours" in err["hint"]
    assert sim_process.state()["ecus"]["DME"]["dtcs"]  # nothing was cleared
    free = box.vci("--json", "dtc", "read", "--ecu", "DME", *flags)  # reading is free
    assert free.returncode == 0 and json.loads(free.stdout)["ecus"][0]["dtcs"]
    assert box.vci("ticket", "add", box.issue("basic-9h")).returncode == 0
    allowed = box.vci("--json", "dtc", "clear", "--yes", "--ecu", "DME", *flags)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert sim_process.state()["ecus"]["DME"]["dtcs"] == []
    listed = json.loads(box.vci("--json", "ticket", "list").stdout)
    assert listed[0]["state"] == "valid"  # activated by its first job


def test_vin_bound_ticket_on_the_cli(box: Box, sim_process) -> None:
    flags = sim_process.cli_args("doip")
    assert box.vci("ticket", "add", box.issue("basic-1d", vin="WBA00000000000001")).returncode == 0
    denied = box.vci("--json", "dtc", "clear", "--yes", "--ecu", "DME", *flags)
    assert (
        denied.returncode == 2
        and "is for vehicle WBA00000000000001, this is WBAJA71090B123456"
        in json.loads(denied.stdout)["message"]
    )
    assert box.vci("ticket", "add", box.issue("basic-1d", vin="WBAJA71090B123456")).returncode == 0
    assert box.vci("--json", "dtc", "clear", "--yes", "--ecu", "DME", *flags).returncode == 0


def test_a_removed_ticket_added_again_keeps_what_it_used(box: Box, sim_process) -> None:
    token = box.issue("basic-9h")
    tid = json.loads(box.vci("--json", "ticket", "add", token).stdout)["tid"]
    flags = sim_process.cli_args("doip")
    assert box.vci("--json", "dtc", "clear", "--yes", "--ecu", "DME", *flags).returncode == 0
    assert box.vci("ticket", "remove", tid).returncode == 0
    again = json.loads(box.vci("--json", "ticket", "add", token).stdout)
    assert again["state"] == "valid" and again["time_left"] < 9 * 3600  # not started afresh


def test_unreadable_ticket_files_are_clear_errors_and_change_nothing(box: Box) -> None:
    cases = {
        "latin1.txt": b"vt1.\xe9\xe8\xff.AAAA\n",  # not UTF-8
        "nested.txt": b"[" * 100_000,  # larger than any ticket
        "empty.txt": b"",
    }
    for name, raw in cases.items():
        (box.root / name).write_bytes(raw)
    cases["missing.txt"] = b""
    for name in cases:
        for command in (["ticket", "add", "--file"], ["ticket", "revocations"]):
            proc = box.vci(*command, str(box.root / name))
            assert proc.returncode == 2, (name, command, proc.stderr)
            assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert json.loads(box.vci("--json", "ticket", "list").stdout) == []
    assert "not UTF-8" in box.vci("ticket", "add", "--file", str(box.root / "latin1.txt")).stderr


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=600) | st.text(max_size=300).map(lambda t: t.encode("utf-16")))
def test_any_ticket_file_gives_text_or_a_ticket_error(tmp_path_factory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("file") / "ticket.txt"
    path.write_bytes(raw)
    try:
        text = read_token_file(path)
    except TicketError as err:
        assert str(path) in str(err) and err.hint
    else:
        assert text == raw.decode("utf-8").strip()
