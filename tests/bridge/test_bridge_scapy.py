"""The ENET bridge of a running ``vci gateway`` driven by a tester the project did not write:
Scapy's ``UDS_HSFZSocket`` and ``UDS_DoIPSocket`` through the bridge to ``vci sim``
(identification, VIN, a 64 KiB download under the programming session and security access), the
battery floor, admission, and the end of a session."""

from __future__ import annotations

import hashlib
import logging
import socket
import struct
import subprocess
import time

import pytest

from firmware_py.transport import hsfz

scapy_hsfz = pytest.importorskip("scapy.contrib.automotive.bmw.hsfz")
scapy_doip = pytest.importorskip("scapy.contrib.automotive.doip")
scapy_uds = pytest.importorskip("scapy.contrib.automotive.uds")
logging.getLogger("scapy").setLevel(logging.ERROR)

VIN = "WBAJA71090B123456"
EGS = 0x18
FLASH_ADDRESS = 0x00080000


def sim_key(seed: bytes, address: int, level: int) -> bytes:
    """The simulator's documented TEST seed/key algorithm (docs/simulator.md)."""
    mask = 0x5A5A0000 | (address << 8) | level
    return ((((int.from_bytes(seed, "big") ^ mask) * 0x41C64E6D) + 0x3039) & 0xFFFFFFFF).to_bytes(
        4, "big"
    )


class ScapyTester:
    """A tester on one of Scapy's sockets: ``ask(request)`` sends raw UDS bytes and returns the
    ECU's final answer (skipping the gateway's acknowledgement and response pending)."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.sock.ins.settimeout(10)

    def ask(self, request: bytes) -> bytes:
        packet = scapy_uds.UDS(request)
        assert bytes(packet) == request  # Scapy sends exactly these bytes
        self.sock.send(packet)
        for _ in range(50):
            answer = self.sock.recv()
            if isinstance(answer, scapy_uds.UDS):
                data = bytes(answer)
                if data[:1] == b"\x7f" and data[2:3] == b"\x78":
                    continue  # response pending
                return data
            assert answer is not None, "the bridge closed the connection"
        raise AssertionError("no answer")

    def close(self) -> None:
        self.sock.close()


def hsfz_tester(ports, target: int = EGS) -> ScapyTester:
    return ScapyTester(scapy_hsfz.UDS_HSFZSocket(0xF4, target, "127.0.0.1", ports["hsfz"]))


def doip_tester(ports, target: int = EGS) -> ScapyTester:
    return ScapyTester(
        scapy_doip.UDS_DoIPSocket(
            ip="127.0.0.1", port=ports["doip"], source_address=0x0EF3, target_address=target
        )
    )


def unlock_for_programming(tester: ScapyTester) -> None:
    assert tester.ask(b"\x10\x03")[:2] == b"\x50\x03"
    assert tester.ask(b"\x10\x02")[:2] == b"\x50\x02"
    seed = tester.ask(b"\x27\x11")
    assert seed[:2] == b"\x67\x11", seed.hex()
    assert tester.ask(b"\x27\x12" + sim_key(seed[2:6], EGS, 0x11))[:2] == b"\x67\x12"


def download(tester: ScapyTester, image: bytes, max_message: int = 0xFFFF) -> int:
    """Erase, RequestDownload, TransferData, RequestTransferExit, check; returns the block count.
    ``max_message``: the longest message the tester's interface carries (ISO-TP: 4095)."""
    region = struct.pack(">II", FLASH_ADDRESS, len(image))
    assert tester.ask(b"\x31\x01\xff\x00" + region) == b"\x71\x01\xff\x00\x00"
    answer = tester.ask(b"\x34\x00\x44" + region)
    assert answer[:1] == b"\x74", answer.hex()
    width = answer[1] >> 4
    block = min(int.from_bytes(answer[2 : 2 + width], "big"), max_message) - 2
    blocks = 0
    for offset in range(0, len(image), block):
        counter = (blocks + 1) & 0xFF
        answer = tester.ask(bytes([0x36, counter]) + image[offset : offset + block])
        assert answer[:2] == bytes([0x76, counter]), answer.hex()
        blocks += 1
    assert tester.ask(b"\x37")[:1] == b"\x77"
    # the ECU checks what it received against the image's SHA-256 (routine 0x0202)
    check = tester.ask(b"\x31\x01\x02\x02" + region + hashlib.sha256(image).digest())
    assert check == b"\x71\x01\x02\x02\x00", check.hex()
    return blocks


@pytest.mark.parametrize("protocol", ["hsfz", "doip"])
def test_identification_vin_and_a_64k_download_through_the_bridge(bridge_box, protocol) -> None:
    gw = bridge_box()
    gw.sim.set_battery(13.6)  # above the programming floor
    ports = gw.open()["ports"]
    # identification on UDP, answered with the car's identity
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        if protocol == "hsfz":
            s.sendto(bytes(scapy_hsfz.HSFZ(control=0x11)), ("127.0.0.1", ports["hsfz_control"]))
            answer = scapy_hsfz.HSFZ(s.recv(2048))
            assert answer.control == 0x11
            assert answer.identification_string.endswith(b"BMWVIN" + VIN.encode())
            s.sendto(hsfz.IDENTIFICATION_REQUEST, ("127.0.0.1", ports["hsfz_control"]))
            assert hsfz.parse_identification(s.recv(2048)).vin == VIN  # as EdiabasLib asks
        else:
            s.sendto(bytes(scapy_doip.DoIP(payload_type=0x0001)), ("127.0.0.1", ports["doip"]))
            answer = scapy_doip.DoIP(s.recv(4096))
            assert answer.payload_type == 0x0004 and answer.vin == VIN.encode()
            assert answer.logical_address == 0x0010
    tester = (hsfz_tester if protocol == "hsfz" else doip_tester)(ports, target=0x12)
    try:
        assert tester.ask(b"\x22\xf1\x90") == b"\x62\xf1\x90" + VIN.encode()
    finally:
        tester.close()
    tester = (hsfz_tester if protocol == "hsfz" else doip_tester)(ports)
    image = bytes(range(256)) * 256  # 64 KiB
    try:
        unlock_for_programming(tester)
        blocks = download(tester, image)
        assert blocks > 1
    finally:
        tester.close()
    closed = gw.vci("bridge", "close")
    assert closed.returncode == 0, closed.stderr
    record = gw.wait_closed()
    assert record["reason"] == "closed" and record["client"] == "127.0.0.1"
    assert record["counters"]["to_car"] >= 8 and record["refusals"] == []
    # every request that is not a read is in the session log, counted by what it does
    assert record["requests"]["programming: RequestDownload"] == 1
    assert record["requests"]["programming: TransferData"] == blocks
    assert record["requests"]["programming: RoutineControl EraseMemory (0xFF00)"] == 1
    assert not any(what.startswith("read:") for what in record["requests"])
    assert gw.session_log("bridge.opened")
    for trace in record["traces"]:  # both sides traced, and Scapy reads the traces
        from scapy.utils import rdpcap

        assert len(rdpcap(trace)) >= 8


def test_below_the_floor_erase_and_download_are_refused_and_logged(bridge_box) -> None:
    gw = bridge_box()
    gw.sim.set_battery(12.1)  # the car's own floor (11.5 V) would let the erase run
    ports = gw.open()["ports"]
    tester = hsfz_tester(ports)
    region = struct.pack(">II", FLASH_ADDRESS, 0x1000)
    try:
        unlock_for_programming(tester)
        assert tester.ask(b"\x31\x01\xff\x00" + region) == b"\x7f\x31\x22"
        assert tester.ask(b"\x34\x00\x44" + region) == b"\x7f\x34\x22"
        assert tester.ask(b"\x22\xf1\x90")[:1] == b"\x62"  # reads still pass
    finally:
        tester.close()
    assert gw.sim.state()["ecus"]["EGS"]["region"]["erased"] is False  # the car saw no erase
    refused = gw.session_log("bridge.refused")
    assert [r["what"] for r in refused] == [
        "RoutineControl EraseMemory (0xFF00)",
        "RequestDownload",
    ]
    assert "12.10 V is below the programming floor 13.0 V" in refused[0]["reason"]
    gw.vci("bridge", "close")
    assert len(gw.wait_closed()["refusals"]) == 2


def test_with_a_basic_ticket_erase_and_download_are_refused_as_raw_programming(
    bridge_box, box
) -> None:
    gw = bridge_box(ticket=box.issue("basic-1d"))  # diagnosis, coding, programming jobs: not raw
    gw.sim.set_battery(13.6)
    tester = doip_tester(gw.open()["ports"])
    region = struct.pack(">II", FLASH_ADDRESS, 0x1000)
    try:
        assert tester.ask(b"\x22\xf1\x90")[:1] == b"\x62"
        assert tester.ask(b"\x10\x03")[:2] == b"\x50\x03"
        assert tester.ask(b"\x10\x02") == b"\x7f\x10\x22"  # the programming session too
        assert tester.ask(b"\x31\x01\xff\x00" + region) == b"\x7f\x31\x22"
        assert tester.ask(b"\x34\x00\x44" + region) == b"\x7f\x34\x22"
    finally:
        tester.close()
    assert gw.sim.state()["ecus"]["EGS"]["region"]["erased"] is False
    refused = gw.session_log("bridge.refused")
    assert len(refused) == 3 and all("raw_programming" in r["reason"] for r in refused)


def test_a_client_that_was_not_admitted_gets_nothing(bridge_box) -> None:
    gw = bridge_box()
    ports = gw.open(client="127.0.0.1")["ports"]
    stranger = "127.0.0.2"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((stranger, 0))
        s.settimeout(0.5)
        s.sendto(hsfz.IDENTIFICATION_REQUEST, ("127.0.0.1", ports["hsfz_control"]))
        s.sendto(bytes(scapy_doip.DoIP(payload_type=0x0001)), ("127.0.0.1", ports["doip"]))
        with pytest.raises(TimeoutError):
            s.recv(2048)

    def turned_away(port: int) -> bool:
        """Reset (at connect or at the first read) or closed without a byte; a connection held
        open without an answer would raise TimeoutError instead."""
        try:
            with socket.create_connection(
                ("127.0.0.1", port), 2, source_address=(stranger, 0)
            ) as c:
                c.settimeout(2)
                c.sendall(hsfz.diagnostic_message(0xF4, 0x12, b"\x22\xf1\x90").encode())
                return c.recv(100) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    for port in (ports["hsfz"], ports["doip"], ports["hsfz_control"]):
        assert turned_away(port)
    gw.vci("bridge", "close")
    assert gw.wait_closed()["counters"]["turned_away"] >= 5


def test_other_jobs_are_refused_while_the_bridge_is_open_and_the_session_times_out(
    bridge_box,
) -> None:
    gw = bridge_box()
    gw.open("127.0.0.1", "--timeout", "3")
    again = gw.vci("bridge", "open", "--client", "127.0.0.1")
    assert again.returncode == 2
    assert "the ENET bridge is open for 127.0.0.1; close it first" in again.stderr
    # a vci command on the box asks the running gateway first: it does not talk to the car either
    beside = gw.vci("identify", *gw.sim.cli_args("doip"))
    assert beside.returncode == 2
    assert "the ENET bridge is open for 127.0.0.1; close it first" in beside.stderr
    requests = gw.sim.state()["ecus"]["DME"]["requests"]
    started = time.monotonic()
    record = gw.wait_closed(timeout=15)
    assert record["reason"] == "timeout"
    assert time.monotonic() - started < 10
    assert not gw.state()["open"]
    assert gw.sim.state()["ecus"]["DME"]["requests"] == requests  # identify never reached it
    assert gw.vci("identify", *gw.sim.cli_args("doip")).returncode == 0  # closed: it runs


def test_the_bridge_needs_a_paired_tablet(bridge_box) -> None:
    gw = bridge_box(paired=False)
    proc = gw.vci("bridge", "open", "--client", "127.0.0.1")
    assert proc.returncode == 2 and "no tablet is paired" in proc.stderr


def test_the_session_ends_with_the_ticket_window_but_not_within_a_download(bridge_box, box) -> None:
    ends = int(time.time()) + 15
    gw = bridge_box(ticket=box.issue("engineering-1d", not_after=ends))  # the box's only ticket
    gw.sim.set_battery(13.6)
    tester = hsfz_tester(gw.open("127.0.0.1", "--timeout", "120")["ports"])
    region = struct.pack(">II", FLASH_ADDRESS, 0x1000)
    try:
        unlock_for_programming(tester)
        assert tester.ask(b"\x31\x01\xff\x00" + region)[:1] == b"\x71"
        assert tester.ask(b"\x34\x00\x44" + region)[:1] == b"\x74"
        assert time.time() < ends, "the set-up took longer than the ticket's window"
        while time.time() < ends + 2:  # the window ends while the download is open
            assert tester.ask(b"\x3e\x00") == b"\x7e\x00"
            time.sleep(0.5)
        assert gw.state()["open"]
        assert tester.ask(b"\x36\x01" + bytes(0x1000))[:2] == b"\x76\x01"
        assert tester.ask(b"\x37")[:1] == b"\x77"
    finally:
        tester.close()
    assert gw.wait_closed(timeout=10)["reason"] == "ticket window ended"


def test_the_tablet_page_opens_the_bridge_for_its_own_address_and_closes_it(bridge_box) -> None:
    gw = bridge_box()
    tablet = gw.tablet
    status, state = tablet.call("GET", "/api/bridge")
    assert status == 200 and state == {"open": False, "your_address": "127.0.0.1"}
    status, job = tablet.call("POST", "/api/bridge/open", {})  # no address: this tablet's
    assert status == 202 and job["params"]["client"] == "127.0.0.1" and job["origin"] == "tablet"
    deadline = time.monotonic() + 20
    while (tablet.call("GET", "/api/bridge")[1].get("job") or {}).get("progress", {}).get(
        "step"
    ) != "bridge open":
        assert time.monotonic() < deadline, "the bridge did not open"
        time.sleep(0.1)
    progress = tablet.call("GET", "/api/bridge")[1]["job"]["progress"]
    ports = progress["ports"]
    assert "job" not in progress  # on the event bus "job" is the job itself (the page reads it)
    tester = doip_tester(ports, target=0x12)
    try:
        assert tester.ask(b"\x22\xf1\x90") == b"\x62\xf1\x90" + VIN.encode()
    finally:
        tester.close()
    status, refused = tablet.call("POST", "/api/jobs", {"kind": "read_vin"})
    assert status == 409 and "the ENET bridge is open for 127.0.0.1" in refused["message"]
    assert tablet.call("POST", "/api/bridge/close", {})[0] == 200
    assert gw.wait_closed()["who"] == "tablet:workshop tablet"
    assert tablet.call("POST", "/api/bridge/close", {})[0] == 409


def test_a_busy_port_or_a_bad_timeout_fails_the_session_with_a_reason(bridge_box) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        gw = bridge_box(env_extra={"VCI_BRIDGE_HSFZ_PORT": str(busy.getsockname()[1])})
        bad = gw.vci("bridge", "open", "--client", "127.0.0.1", "--timeout", "0")
        assert bad.returncode == 2 and "timeout must be between 1 and" in bad.stderr
        taken = gw.vci("bridge", "open", "--client", "127.0.0.1")
    assert taken.returncode == 2
    assert "the bridge cannot listen on 127.0.0.1" in taken.stderr
    assert "no other program uses the bridge's ports" in taken.stderr
    assert not gw.state()["open"]


def test_a_box_on_hsfz_relays_both_protocols_and_reads_the_voltage_over_hsfz(bridge_box) -> None:
    gw = bridge_box(transport="hsfz")  # the box's own link to the car is HSFZ
    gw.sim.set_battery(12.3)
    ports = gw.open()["ports"]
    for make in (hsfz_tester, doip_tester):
        tester = make(ports, target=0x12)
        try:
            assert tester.ask(b"\x22\xf1\x90") == b"\x62\xf1\x90" + VIN.encode()
        finally:
            tester.close()
    tester = hsfz_tester(ports)
    try:
        unlock_for_programming(tester)
        assert tester.ask(b"\x31\x01\xff\x00" + bytes(8)) == b"\x7f\x31\x22"
    finally:
        tester.close()
    gw.vci("bridge", "close")
    refusal = gw.wait_closed()["refusals"][0]
    assert refusal["volts"] == pytest.approx(12.3)


def test_open_parameters_are_checked_like_every_jobs_on_both_sockets(bridge_box) -> None:
    """The admin socket and the page hand the caller's values to the job's parameter check: a
    timeout that is not a number is a 400 naming it (it was a 500 on the admin socket)."""
    from firmware_py.gateway.admin import admin_request

    gw = bridge_box()
    for client, timeout in (("127.0.0.1", "soon"), ("127.0.0.1", True), (7, None)):
        status, body = admin_request(
            gw.box.root / "state", "POST", "/bridge/open", {"client": client, "timeout": timeout}
        )
        assert status == 400, body
        assert ("timeout is not a number" if timeout else "client is not text") in body["message"]
        status, body = gw.tablet.call(
            "POST", "/api/bridge/open", {"client": client, "timeout": timeout}
        )
        assert status == 400, body
        assert ("timeout is not a number" if timeout else "client is not text") in body["message"]
    assert not gw.state()["open"]


STOP_PROMPTLY = 5.0
"""seconds a gateway has from SIGTERM to its exit with a job that can stop running (systemd's
stop, a reboot for an update): under a second on an idle machine"""


@pytest.mark.parametrize("job", ["enet_bridge", "read_live_data"])
def test_a_sigterm_stops_the_running_jobs_and_the_gateway_exits_at_once(bridge_box, job) -> None:
    """Background jobs that run until cancelled (the open bridge, live data) are asked to stop
    when the gateway stops; it must not wait for them to end by themselves (an hour for the
    bridge) until systemd kills it, losing the session's closing record."""
    gw = bridge_box()
    if job == "enet_bridge":
        gw.open()  # answers once the bridge listens
    else:
        status, live = gw.tablet.call(
            "POST", "/api/jobs", {"kind": "read_live_data", "params": {"duration": 600}}
        )
        assert status == 202, live
        deadline = time.monotonic() + 15
        while "values" not in gw.tablet.call("GET", f"/api/jobs/{live['id']}")[1]["progress"]:
            assert time.monotonic() < deadline, "no live data within 15 s"
            time.sleep(0.1)
    started = time.monotonic()
    gw.gateway.process.terminate()
    try:
        code = gw.gateway.process.wait(timeout=STOP_PROMPTLY)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the gateway did not exit within {STOP_PROMPTLY} s of SIGTERM with {job}")
    assert code == 0, gw.gateway.output.finish()
    print(f"SIGTERM to exit with {job} running: {time.monotonic() - started:.2f} s")
    if job == "enet_bridge":
        assert gw.outbox_record("bridge.closed")["reason"] == "closed"
