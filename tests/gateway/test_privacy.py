"""One vehicle's data on a customer's request (docs/data-protection.md): the VIN is found where
the box keeps it in any form (text, hex, base64, and in traces through ISO-TP frames and TCP
segments), exported, and erased so that no file under the state directory names it afterwards -
the SQLite files included - while another car's data stays; the erasure is recorded by a keyed
hash of the VIN, never the VIN."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import tempfile
import time
import zipfile
from pathlib import Path

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_py.config import TransportConfig
from firmware_py.errors import ConfigError, PreconditionError
from firmware_py.gateway import job_log, privacy
from firmware_py.gateway.info_cache import FILE as INFO_CACHE_FILE
from firmware_py.gateway.info_cache import InfoCache
from firmware_py.gateway.job_handlers import HANDLERS, vehicle_vin
from firmware_py.gateway.jobs import Caller, Job, JobRequest, JobState
from firmware_py.gateway.report_jobs import save_report
from firmware_py.gateway.service import Gateway
from firmware_py.gateway.store import Store
from firmware_py.transport.trace import CanTrace, DoipTrace
from firmware_py.transport.trace_search import trace_contains
from firmware_py.uds.vehicle import VehicleSession
from tests.conftest import start_gateway_process

VIN = "WBAJA71090B123456"  # the simulated car's (vci sim's default, a G30)
OTHER = "WBA5R11000FH99999"
TABLET = Caller("tablet", "test")


def _can_frames(vin: str, extended: bool) -> list[can.Message]:
    """UDS 0x22 F190's answer as ISO-TP frames (ISO 15765-2): BMW's extended addressing (the
    tester's address first) or normal addressing on 0x7E8."""
    payload = b"\x62\xf1\x90" + vin.encode()
    head = b"\xf1" if extended else b""
    room = 7 - len(head)
    frames = [head + bytes([0x10, len(payload)]) + payload[: room - 1]]
    rest, seq = payload[room - 1 :], 1
    while rest:
        frames.append((head + bytes([0x20 | seq]) + rest[:room]).ljust(8, b"\xaa"))
        rest, seq = rest[room:], (seq + 1) & 0x0F
    can_id = 0x612 if extended else 0x7E8
    return [can.Message(arbitration_id=can_id, data=f, is_extended_id=False) for f in frames]


@pytest.mark.parametrize("extended", [True, False], ids=["bmw-extended", "normal"])
def test_a_vin_cut_into_isotp_frames_is_found_in_a_can_trace(tmp_path, extended) -> None:
    path = tmp_path / "can.pcap"
    trace = CanTrace(path)
    trace.tx(can.Message(arbitration_id=0x6F1, data=b"\x12\x03\x22\xf1\x90", is_extended_id=False))
    for msg in _can_frames(VIN, extended):
        trace.on_message_received(msg)
    trace.stop()
    assert VIN.encode() not in path.read_bytes()  # not as the bytes lie in the file
    assert trace_contains(path, [VIN.encode()])
    assert not trace_contains(path, [OTHER.encode()])


def test_a_vin_cut_by_tcp_segments_is_found_in_an_ethernet_trace(tmp_path) -> None:
    path = tmp_path / "bridge.pcap"
    trace = DoipTrace(path, ("192.168.4.1", 50000), ("169.254.1.2", 6801))
    answer = b"\x00\x00\x00\x17\x01\x12\xf4\x62\xf1\x90" + VIN.encode()
    trace.rx(answer[:12])  # one read of the car's socket ended in the middle of the VIN
    trace.rx(answer[12:])
    trace.close()
    assert VIN.encode() not in path.read_bytes()
    assert trace_contains(path, [VIN.encode()])


def test_the_forms_of_a_vin_cover_hex_and_base64_wherever_it_starts() -> None:
    forms = privacy.vin_forms(VIN)
    assert VIN.encode().hex().encode() in forms and VIN.encode().hex().upper().encode() in forms
    for prefix in (b"", b"x", b"xy", b'{"vin": "'):
        text = base64.b64encode(prefix + VIN.encode() + b'"}')
        assert any(f in text for f in forms), prefix
        url = base64.urlsafe_b64encode(b"\xff\xfe" + prefix + VIN.encode())
        assert any(f in url for f in forms), prefix
    with pytest.raises(ConfigError, match="not a VIN"):
        privacy.normalise_vin("WBA8E9C50GK12345O")  # an O: no VIN has one


def _open(cfg: TransportConfig, transport: str, trace: Path) -> Gateway:
    return Gateway(
        Store(trace.parent.parent),
        open_vehicle=lambda: VehicleSession.open(cfg, transport, trace_path=trace),
        handlers=HANDLERS,
        read_vin=vehicle_vin,
    )


def _other_cars_data(store: Store) -> list[Path]:
    """Another car's record, report and CAN trace on the same box: the erasure must leave them."""
    now = time.time()  # recent: not yet due for the retention job the gateway runs
    job_log.record(store, {"id": "other-1", "finished": now, "kind": "identify"}, OTHER)
    report = save_report(store.state_dir, {"kind": "vehicle_test", "id": "o1", "vin": OTHER})
    trace_path = store.state_dir / "traces" / "other-can.pcap"
    trace = CanTrace(trace_path)
    for msg in _can_frames(OTHER, True):
        trace.on_message_received(msg)
    trace.stop()
    return [report, trace_path]


def _every_file_naming(state_dir: Path, vin: str) -> list[str]:
    """The test's own search: every byte of every file under the state directory, for the VIN's
    text, hex and base64 forms, and every trace read through its framing."""
    forms = privacy.vin_forms(vin)
    hits = []
    for path in sorted(p for p in state_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if any(f in data for f in forms) or (
            path.suffix == ".pcap" and trace_contains(path, forms)
        ):
            hits.append(str(path.relative_to(state_dir)))
    return hits


def test_erasure_leaves_no_trace_of_the_vin_under_the_state_dir(tmp_path, start_sim) -> None:
    sim = start_sim()
    cfg = TransportConfig(
        doip_host=sim.doip_host, doip_port=sim.doip_port,
        can_interface=sim.can_interface, can_channel=sim.can_channel,
    )  # fmt: skip
    state = tmp_path / "state"
    can_gateway = _open(cfg, "can", state / "traces" / "car-can.pcap")
    gateway = _open(cfg, "doip", state / "traces" / "car-doip.pcap")
    store = gateway.store
    others = _other_cars_data(store)

    async def jobs_on_the_car() -> None:
        await can_gateway.start()
        try:
            assert (
                await can_gateway.runner.run(JobRequest("identify"), TABLET)
            ).state is JobState.DONE
        finally:
            await can_gateway.stop()
        await gateway.start()
        runner = gateway.runner
        for request in (
            JobRequest("identify"),
            JobRequest("raw_uds", {"request": "22F190"}, "DME"),  # its answer kept as hex
            JobRequest("vehicle_test_report"),  # reports/ and the outbox
            JobRequest("service_history", {"action": "read"}),  # booklet entries: VIN in ids
            JobRequest("help_desk_request", {"question": "rough idle", "contact": "0711 1234"}),
        ):
            job = await runner.run(request, TABLET)
            assert job.state is JobState.DONE, job.error
            await asyncio.sleep(0)  # the gateway keeps its record (the job journal, outbox)
        try:
            with pytest.raises(PreconditionError, match="connected to"):
                await gateway.erase_vin(VIN, "test")
        finally:
            await gateway.stop()

    async def erase_when_unplugged() -> dict:
        unplugged = Gateway(store, open_vehicle=lambda: None, handlers=HANDLERS)
        await unplugged.start()
        try:
            return await unplugged.erase_vin(VIN, "cli:test for Frau Muster")
        finally:
            await unplugged.stop()

    asyncio.run(jobs_on_the_car())
    cache = InfoCache(state / INFO_CACHE_FILE, 1 << 20)  # the portal's repair information
    for car in (VIN, OTHER):
        cache.put({"vin": car, "content_version": "sample-1", "instructions": [], "dtcs": {},
                   "campaigns": []})  # fmt: skip
    before = _every_file_naming(state, VIN)
    assert {"traces/car-can.pcap", "traces/car-doip.pcap", "vci.sqlite3-wal",
            INFO_CACHE_FILE} <= set(before)  # fmt: skip
    assert any(name.startswith("reports/") for name in before)
    found = privacy.find(store, VIN)
    assert found.rows["job_log"] and found.rows["outbox"] and found.helpdesk
    assert found.rows["booklet_queued"] and len(found.traces) == 2

    result = asyncio.run(erase_when_unplugged())

    assert result["remaining"] == []
    assert _every_file_naming(state, VIN) == []
    assert all(p.exists() for p in others)  # the other car's report and trace
    assert [e["vin"] for e in job_log.since(store, 0)] == [OTHER]
    kept = _every_file_naming(state, OTHER)  # its job journal row is in the database
    assert {"reports/" + others[0].name, "traces/other-can.pcap"} < set(kept)
    assert any(name.startswith("vci.sqlite3") for name in kept)
    [record] = privacy.erasures(store)
    assert record["vin_hash"] == result["vin_hash"] == privacy.vin_hash(state, VIN)
    assert record["who"] == "cli:test for Frau Muster"
    assert record["deleted"]["traces"] == 2 and record["deleted"]["job_log"] >= 5
    assert record["deleted"]["info_cache"] == 1 and cache.vins() == [OTHER]


def test_vci_privacy_exports_and_erases_through_the_running_gateway(box, tmp_path) -> None:
    state = box.root / "state"
    store = Store(state)
    job_log.record(store, {"id": "j1", "finished": time.time(), "kind": "coding"}, VIN)
    report = save_report(state, {"kind": "vehicle_test", "id": "r1", "vin": VIN})
    trace = state / "traces" / "car.pcap"
    can_trace = CanTrace(trace)
    for msg in _can_frames(VIN, True):
        can_trace.on_message_received(msg)
    can_trace.stop()
    others = _other_cars_data(store)
    env = {"VCI_CONFIG": str(box.config), "VCI_SECURITY_TICKETS": "off"}
    with start_gateway_process(["--doip"], env={**os.environ, **env}) as gw:
        archive = tmp_path / "export.zip"
        done = box.vci("privacy", "export", "--vin", VIN.lower(), "-o", str(archive))
        assert done.returncode == 0, done.stderr
        with zipfile.ZipFile(archive) as z:
            assert sorted(z.namelist()) == ["traces/car.pcap", "vehicle-data.json"]
            data = json.loads(z.read("vehicle-data.json"))
        assert data["vin"] == VIN and [r["id"] for r in data["records"]["job_log"]] == ["j1"]
        assert [r["report"]["id"] for r in data["reports"]] == ["r1"]
        assert OTHER not in json.dumps(data)

        bad = box.vci("privacy", "erase", "--vin", "1234")
        assert bad.returncode == 2 and "17 characters" in bad.stderr
        done = box.vci("privacy", "erase", "--vin", VIN, "--by", "Frau Muster")
        assert done.returncode == 0, done.stderr
        assert f"erased {VIN}" in done.stdout and "hmac-sha256:" in done.stdout
        listed = json.loads(box.vci("--json", "privacy", "erasures").stdout)
        gw.output.wait_for("privacy: erased", 10)
    assert not report.exists() and not trace.exists() and all(p.exists() for p in others)
    assert [e["who"].endswith(" for Frau Muster") for e in listed] == [True]
    assert _every_file_naming(state, VIN) == []


def test_erasure_forgets_the_finished_jobs_held_in_memory(tmp_path) -> None:
    gateway = Gateway(Store(tmp_path / "state"), open_vehicle=lambda: None, handlers=HANDLERS)
    answer = "62f190" + VIN.encode().hex()  # a raw request's answer names it in hex only
    for jid, result in (("raw", {"response": answer}), ("other", {"vin": OTHER})):
        gateway.runner.jobs[jid] = Job(
            jid, JobRequest("raw_uds"), TABLET, JobState.DONE, result=result, finished=time.time()
        )

    async def main() -> dict:
        await gateway.start()
        try:
            return await gateway.erase_vin(VIN, "test")
        finally:
            await gateway.stop()

    assert asyncio.run(main())["remaining"] == []
    assert list(gateway.runner.jobs) == ["other"]


VINS = st.text(alphabet="ABCDEFGHJKLMNPRSTUVWXYZ0123456789", min_size=17, max_size=17)


@settings(max_examples=60, deadline=None)
@given(vin=VINS, cuts=st.lists(st.integers(1, 40), max_size=6), extended=st.booleans())
def test_a_vin_is_found_however_the_link_cut_it(vin, cuts, extended) -> None:
    answer = b"\x00\x00\x00\x17\x01\x12\xf4\x62\xf1\x90" + vin.encode() + b"\x00" * 8
    with tempfile.TemporaryDirectory() as tmp:
        tcp_path, can_path = Path(tmp) / "tcp.pcap", Path(tmp) / "can.pcap"
        tcp = DoipTrace(tcp_path, ("192.168.4.1", 50000), ("169.254.1.2", 6801))
        at = 0
        for cut in sorted(set(cuts)):
            tcp.rx(answer[at:cut])
            at = max(at, cut)
        tcp.rx(answer[at:])
        tcp.close()
        can_trace = CanTrace(can_path)
        for msg in _can_frames(vin, extended):
            can_trace.on_message_received(msg)
        can_trace.stop()
        assert trace_contains(tcp_path, [vin.encode()])
        assert trace_contains(can_path, privacy.vin_forms(vin))
