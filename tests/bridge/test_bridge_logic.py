"""The bridge's own logic without processes: the guard's decisions (byte vectors from ISO
14229-1), the DoIP stream codec on the server side, the runner holding the vehicle while the
bridge is open, and the tester-side protocol of a translating bridge over real loopback sockets
(order kept behind a voltage reading, refusals shaped as the ECU's)."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading

import pytest
from doipclient.messages import DiagnosticMessage, RoutingActivationRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_py.config import BridgeConfig
from firmware_py.errors import FrameError, PreconditionError
from firmware_py.gateway.bridge_guard import Guard, battery_guarded, required_scope
from firmware_py.gateway.bridge_net import BridgeIdentity, EnetCar, Hub
from firmware_py.gateway.events import EventBus
from firmware_py.gateway.jobs import Caller, JobRequest, JobRunner, JobState, VehicleWorker
from firmware_py.gateway.tariffs import Scope
from firmware_py.transport import doip_frames, hsfz
from firmware_py.transport.hsfz import ControlWord, HsfzIdentity

ERASE = bytes.fromhex("3101FF00 00080000 00001000")
DOWNLOAD = bytes.fromhex("340044 00080000 00001000")
VIN = "WBAJA71090B123456"


# -- the guard ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "request_hex, guarded",
    [
        ("3101FF0000080000", True),  # start EraseMemory
        ("3181FF0000080000", True),  # ... with suppressPosRspMsgIndicationBit
        ("3103FF00", False),  # results of the erase: reads
        ("3102FF00", False),  # stop
        ("340044000800000000001000", True),  # RequestDownload
        ("3800", True),  # RequestFileTransfer
        ("360100", False),  # TransferData continues a download
        ("37", False),
        ("1002", False),  # the programming session changes nothing yet
        ("22F190", False),
        ("310102030000", False),  # a self test
        ("", False),
    ],
)
def test_what_the_floor_guards(request_hex: str, guarded: bool) -> None:
    assert (battery_guarded(bytes.fromhex(request_hex)) is not None) is guarded


def test_below_the_floor_the_answer_is_the_ecus_conditions_not_correct() -> None:
    guard = Guard(13.0)
    assert guard.needs_voltage(ERASE) and guard.needs_voltage(DOWNLOAD)
    refusal = guard.check(ERASE, 12.4)
    assert refusal is not None and refusal.response == b"\x7f\x31\x22"
    assert "12.40 V is below the programming floor 13.0 V" in refusal.reason
    assert guard.check(DOWNLOAD, 12.99).response == b"\x7f\x34\x22"  # type: ignore[union-attr]
    assert guard.check(ERASE, 13.0) is None and guard.check(DOWNLOAD, 14.1) is None
    unread = guard.check(ERASE, None)
    assert unread is not None and "could not be read" in unread.reason
    assert guard.check(b"\x22\xf1\x90", None) is None  # reads never wait for the voltage


def test_the_scope_of_each_request_and_refusal_without_it() -> None:
    assert required_scope(b"\x22\xf1\x90") is Scope.DIAGNOSIS
    assert required_scope(b"\x2e\xf1\x90\x00") is Scope.CODING
    assert required_scope(ERASE) is Scope.RAW_PROGRAMMING
    assert required_scope(b"\x10\x02") is Scope.RAW_PROGRAMMING
    assert required_scope(b"\xba\x01") is Scope.RAW_PROGRAMMING  # unknown: the most restrictive
    refusal = Guard(13.0).check(b"\x10\x02", 14.0, entitled=False)
    assert refusal is not None and refusal.response == b"\x7f\x10\x22"
    assert "raw_programming" in refusal.reason


def test_a_download_is_followed_to_its_exit() -> None:
    guard = Guard(13.0)
    assert not guard.continues_download(b"\x36\x01")
    guard.sent(DOWNLOAD)
    assert guard.downloading and guard.continues_download(b"\x36\x01\x00")
    assert guard.continues_download(b"\x37") and not guard.continues_download(ERASE)
    guard.sent(b"\x37")
    assert not guard.downloading
    guard.sent(DOWNLOAD)
    guard.answered(b"\x7f\x34\x78")  # response pending: still starting
    assert guard.downloading
    guard.answered(b"\x7f\x34\x70")  # the ECU refused it: no download to wait for
    assert not guard.downloading and not guard.continues_download(b"\x36\x01")


# -- the DoIP codec -----------------------------------------------------------------------------
def _stream() -> bytes:
    return (
        doip_frames.pack_message(RoutingActivationRequest(0x0EF3, 0), 3)
        + doip_frames.pack_message(DiagnosticMessage(0x0EF3, 0x0012, b"\x22\xf1\x90"), 3)
        + doip_frames.pack(doip_frames.ALIVE_CHECK_RESPONSE, b"\x0e\xf3", 2)
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), max_size=10))
def test_any_split_of_the_stream_gives_the_same_messages(cuts: list[int]) -> None:
    data, decoder, out, at = _stream(), doip_frames.Decoder(), [], 0
    for cut in cuts:
        out += decoder.feed(data[at : at + cut])
        at += cut
    out += decoder.feed(data[at:])
    assert [m.payload_type for m in out] == [0x0005, 0x8001, 0x0008]
    assert out[1].diagnostic == (0x0EF3, 0x0012, b"\x22\xf1\x90")
    assert out[1].parsed().user_data == b"\x22\xf1\x90"  # doipclient reads what we framed
    assert out[0].encode() + out[1].encode() + out[2].encode() == data


def test_a_broken_pattern_or_a_huge_announcement_ends_the_stream() -> None:
    with pytest.raises(FrameError, match="pattern"):
        doip_frames.Decoder().feed(bytes.fromhex("02FC800100000005"))
    decoder = doip_frames.Decoder()
    with pytest.raises(FrameError, match="announces"):
        decoder.feed(bytes.fromhex("02FD8001 7FFFFFFF") + bytes(100))
    assert decoder.pending == 0  # nothing buffered for it


# -- the runner holds the vehicle for the bridge --------------------------------------------------
def test_while_the_bridge_is_open_other_jobs_are_refused() -> None:
    opened = threading.Event()

    def bridge(vehicle, ctx):
        opened.set()
        ctx.job.cancel.wait(10)
        return {"reason": "closed"}

    def identify(vehicle, ctx):
        return {"vin": VIN}

    async def main() -> None:
        bus = EventBus()
        bus.bind(asyncio.get_running_loop())
        worker = VehicleWorker(lambda: object())
        runner = JobRunner(
            bus=bus,
            worker=worker,
            handlers={"enet_bridge": bridge, "identify": identify},
            entitlements=None,
        )
        job = runner.submit(JobRequest("enet_bridge", {"client": "192.168.4.23"}), Caller("cli"))
        await asyncio.get_running_loop().run_in_executor(None, opened.wait, 5)
        with pytest.raises(PreconditionError, match="open for 192.168.4.23; close it first"):
            runner.submit(JobRequest("identify"), Caller("tablet", "t"))
        with pytest.raises(PreconditionError, match="ENET bridge is open"):
            runner.submit(JobRequest("enet_bridge", {"client": "10.0.0.1"}), Caller("cli"))
        assert runner.vehicle_holder is job
        runner.cancel(job.id)
        await runner.drain()
        assert job.state is JobState.DONE and runner.vehicle_holder is None
        assert (await runner.run(JobRequest("identify"), Caller("cli"))).state is JobState.DONE
        # and the bridge does not open while another job holds the worker
        slow = threading.Event()
        runner.handlers = {**runner.handlers, "identify": lambda v, c: slow.wait(5) and {}}
        busy = runner.submit(JobRequest("identify"), Caller("cli"))
        with pytest.raises(PreconditionError, match=f"job {busy.id} \\(identify\\) is still"):
            runner.submit(JobRequest("enet_bridge", {"client": "192.168.4.23"}), Caller("cli"))
        slow.set()
        await runner.drain()
        worker.close()

    asyncio.run(main())


# -- the tester side of a translating bridge, on loopback ------------------------------------------
class EchoCar:
    """A car side that answers every request with its positive response (SID + 0x40)."""

    max_message = 4095

    def __init__(self) -> None:
        self.requests: list[tuple[int, bytes]] = []

    def request(self, target, payload, answer, done) -> None:
        self.requests.append((target, payload))
        answer(bytes([payload[0] + 0x40]) + payload[1:3])
        done()


def _hub(car: EchoCar | EnetCar, volts: float, refusals: list) -> Hub:
    async def voltage() -> float:
        await asyncio.sleep(0.05)  # a reading takes a while: what comes behind it must wait
        return volts

    return Hub(
        "127.0.0.1",
        BridgeConfig(listen_host="127.0.0.1", hsfz_port=0, hsfz_control_port=0, doip_port=0),
        car,
        Guard(13.0),
        BridgeIdentity(VIN, hsfz=HsfzIdentity(0x10, "001A37C0FFEE", VIN)),
        voltage,
        refusals.append,
    )


def _read_frames(sock: socket.socket, count: int) -> list[hsfz.Frame]:
    decoder, frames = hsfz.Decoder(), []
    while len(frames) < count:
        data = sock.recv(65536)
        assert data, "closed"
        frames += decoder.feed(data)
    return frames


@pytest.mark.parametrize("volts, erase_answer", [(12.2, b"\x7f\x31\x22"), (13.8, b"\x71\x01\xff")])
def test_hsfz_translation_acknowledges_answers_and_keeps_order(volts, erase_answer) -> None:
    car, refusals = EchoCar(), []

    async def main() -> list[hsfz.Frame]:
        hub = _hub(car, volts, refusals)
        ports = await hub.start()

        def tester() -> list[hsfz.Frame]:
            with socket.create_connection(("127.0.0.1", ports["hsfz"]), 5) as s:
                s.settimeout(5)
                s.sendall(
                    hsfz.diagnostic_message(0xF4, 0x18, ERASE).encode()
                    + hsfz.diagnostic_message(0xF4, 0x12, b"\x22\xf1\x90").encode()
                    + hsfz.Frame(ControlWord.ALIVE_CHECK, b"\xf4").encode()
                )
                return _read_frames(s, 5)

        frames = await asyncio.get_running_loop().run_in_executor(None, tester)
        await hub.stop()
        return frames

    frames = asyncio.run(main())
    assert [(f.control, f.payload) for f in frames] == [
        (ControlWord.ACKNOWLEDGE, ERASE[:5]),
        (ControlWord.DIAGNOSTIC_MESSAGE, erase_answer),
        (ControlWord.ACKNOWLEDGE, b"\x22\xf1\x90"),
        (ControlWord.DIAGNOSTIC_MESSAGE, b"\x62\xf1\x90"),
        (ControlWord.ALIVE_CHECK, b"\x10"),
    ]
    assert (frames[1].source, frames[1].target) == (0x18, 0xF4)
    if volts < 13:
        assert [t for t, _ in car.requests] == [0x12] and len(refusals) == 1
    else:
        assert [t for t, _ in car.requests] == [0x18, 0x12] and not refusals


def test_doip_translation_activates_routing_and_refuses_unknown_testers() -> None:
    car, refusals = EchoCar(), []

    async def main() -> list[doip_frames.Message]:
        hub = _hub(car, 14.0, refusals)
        ports = await hub.start()

        def tester() -> list[doip_frames.Message]:
            with socket.create_connection(("127.0.0.1", ports["doip"]), 5) as s:
                s.settimeout(5)
                s.sendall(
                    doip_frames.pack_message(DiagnosticMessage(0x0EF3, 0x12, b"\x22\xf1\x90"))
                    + doip_frames.pack_message(RoutingActivationRequest(0x0EF3, 0))
                    + doip_frames.pack_message(DiagnosticMessage(0x0EF3, 0x12, b"\x22\xf1\x90"))
                )
                decoder, out = doip_frames.Decoder(), []
                while len(out) < 4:
                    out += decoder.feed(s.recv(4096))
                return out

        messages = await asyncio.get_running_loop().run_in_executor(None, tester)
        await hub.stop()
        return messages

    messages = asyncio.run(main())
    assert [m.payload_type for m in messages] == [0x8003, 0x0006, 0x8002, 0x8001]
    assert messages[0].payload[4] == 0x02  # invalid source address: not activated yet
    assert struct.unpack(">HHB", messages[1].payload[:5]) == (0x0EF3, 0x0010, 0x10)
    assert messages[3].diagnostic == (0x0012, 0x0EF3, b"\x62\xf1\x90")
    assert car.requests == [(0x12, b"\x22\xf1\x90")]


def test_a_tester_finds_the_bridge_by_broadcast_and_the_answer_comes_from_its_address() -> None:
    """ISTA, E-Sys and EdiabasLib's "auto" find a car by identification sent to the network's
    broadcast address; a socket bound to the box's own address alone never receives it. The
    answer comes from the box's address (the tester connects where the answer came from)."""

    async def main() -> list[tuple[bytes, tuple[str, int]]]:
        hub = _hub(EchoCar(), 14.0, [])
        ports = await hub.start()

        def tester() -> list[tuple[bytes, tuple[str, int]]]:
            answers = []
            for port, request in (
                (ports["doip"], doip_frames.pack(0x0001, b"")),
                (ports["hsfz_control"], hsfz.IDENTIFICATION_REQUEST),
            ):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                    s.bind(("127.0.0.1", 0))  # the admitted client
                    s.settimeout(5)
                    s.sendto(request, ("127.255.255.255", port))  # loopback's broadcast (/8)
                    answers.append(s.recvfrom(4096))
            return answers

        try:
            return await asyncio.get_running_loop().run_in_executor(None, tester)
        finally:
            await hub.stop()

    (doip, doip_from), (ident, ident_from) = asyncio.run(main())
    assert doip_from[0] == ident_from[0] == "127.0.0.1"
    assert doip_frames.decode_datagram(doip).parsed().vin == VIN
    assert hsfz.parse_identification(ident).vin == VIN


def test_functional_requests_are_not_translated_to_one_isotp_channel() -> None:
    car, refusals = EchoCar(), []

    async def main() -> list[hsfz.Frame]:
        hub = _hub(car, 14.0, refusals)
        ports = await hub.start()

        def tester() -> list[hsfz.Frame]:
            with socket.create_connection(("127.0.0.1", ports["hsfz"]), 5) as s:
                s.settimeout(5)
                s.sendall(hsfz.diagnostic_message(0xF4, 0xDF, b"\x22\xf1\x90").encode())
                return _read_frames(s, 1)

        frames = await asyncio.get_running_loop().run_in_executor(None, tester)
        await hub.stop()
        return frames

    frames = asyncio.run(main())
    assert frames[0].control == ControlWord.INCORRECT_DESTINATION_ADDRESS
    assert frames[0].data == b"\xf4\xdf" and car.requests == []


def test_a_flooding_tester_is_held_back_and_extra_connections_are_reset() -> None:
    """Memory stays bounded: while a voltage reading is awaited the bridge stops reading the
    tester's socket, so the tester's sends block instead of the box buffering them; connections
    beyond the limit are reset."""
    from firmware_py.gateway import bridge_faces

    car, refusals = EchoCar(), []
    release = asyncio.Event()
    frame = hsfz.diagnostic_message(0xF4, 0x18, ERASE).encode()
    total = 50_000_000  # bytes the tester tries to send

    async def main() -> tuple[int, int, bool]:
        hub = _hub(car, 14.0, refusals)

        async def slow_voltage() -> float:
            await release.wait()
            return 14.0

        hub.voltage = slow_voltage
        ports = await hub.start()
        peak = 0

        def tester() -> tuple[int, bool]:
            sent = 0
            with socket.create_connection(("127.0.0.1", ports["hsfz"]), 5) as s:
                s.settimeout(1.0)
                try:
                    while sent < total:
                        sent += s.send(frame * 100)
                except TimeoutError:
                    pass  # the bridge reads no further: the kernel's buffers are full
                extra = [
                    socket.create_connection(("127.0.0.1", ports["hsfz"]), 5)
                    for _ in range(bridge_faces.MAX_CONNECTIONS)
                ]
                try:
                    extra[-1].settimeout(2)
                    try:
                        reset = extra[-1].recv(10) == b""
                    except ConnectionResetError:
                        reset = True
                finally:
                    for c in extra:
                        c.close()
            return sent, reset

        job = asyncio.get_running_loop().run_in_executor(None, tester)
        while not job.done():
            peak = max(peak, *(len(c.pending) for c in hub._connections), 0)
            await asyncio.sleep(0.01)
        sent, reset = await job
        release.set()
        await hub.stop()
        return sent, peak, reset

    sent, peak, reset = asyncio.run(main())
    assert sent < total // 10  # held back: the kernel's buffers, not the box's memory
    # at most one read ahead (asyncio reads up to 256 KiB at once)
    assert peak <= bridge_faces.MAX_BACKLOG + (256 << 10) // len(frame) + 1, peak
    assert reset


class StubTransport(asyncio.Transport):
    """asyncio's side of a socket, kept in memory: what the bridge writes, whether it closed."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 6801)}.get(
            name, default
        )


@settings(max_examples=300, deadline=None)
@given(
    face=st.sampled_from(["hsfz", "hsfz-control", "doip"]),
    mode=st.sampled_from(["translate", "relay"]),
    chunks=st.lists(
        st.binary(max_size=64)
        | st.sampled_from(
            [
                hsfz.diagnostic_message(0xF4, 0x12, b"\x22\xf1\x90").encode(),
                hsfz.diagnostic_message(0xF4, 0xDF, b"\x31\x01\xff\x00").encode(),
                bytes.fromhex("000000000012"),
                doip_frames.pack_message(RoutingActivationRequest(0x0EF3, 0)),
                doip_frames.pack_message(DiagnosticMessage(0x0EF3, 0x12, b"\x22\xf1\x90")),
                doip_frames.pack(0x8001, b"\x0e"),
                doip_frames.pack(0x0005, b"\x0e\xf3"),
                bytes.fromhex("02FD0007 00000000"),
            ]
        ),
        max_size=8,
    ),
)
def test_whatever_a_tester_sends_the_bridge_answers_or_closes(face, mode, chunks) -> None:
    """No byte sequence from the tester raises inside the bridge (asyncio would log it and drop
    the connection): every input is answered, refused, relayed or closes the connection."""
    from firmware_py.gateway import bridge_faces

    errors: list[dict] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
        car = EchoCar() if mode == "translate" else EnetCar(("127.0.0.1", 1), ("127.0.0.1", 1))
        hub = _hub(car, 14.0, [])

        async def voltage() -> float:
            return 12.0

        hub.voltage = voltage
        cls = {
            "hsfz": bridge_faces.HsfzTester,
            "hsfz-control": bridge_faces.HsfzControl,
            "doip": bridge_faces.DoipTester,
        }[face]
        conn = cls(hub)

        async def car_leg_attached_below() -> None:
            pass

        conn._connect_car = car_leg_attached_below  # type: ignore[method-assign]
        conn.connection_made(StubTransport())
        if conn.relay and conn.protocol:
            leg = bridge_faces.CarLeg(conn)
            leg.connection_made(StubTransport())
            conn.hold("car", False)
        for chunk in chunks:
            if conn.transport is None or conn.transport.is_closing():
                break
            conn.data_received(chunk)
            await asyncio.sleep(0)
        for _ in range(20):  # voltage readings finish
            await asyncio.sleep(0)

    asyncio.run(main())
    assert errors == []
