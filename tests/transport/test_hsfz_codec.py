"""The HSFZ codec: byte vectors as a BMW gateway sends them, any split of a TCP stream, bounds on
what a header may announce, and agreement with Scapy's HSFZ packets (an implementation we did
not write)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_py.errors import FrameError
from firmware_py.transport import hsfz
from firmware_py.transport.hsfz import ControlWord, Decoder, Frame, HsfzIdentity

scapy_hsfz = pytest.importorskip("scapy.contrib.automotive.bmw.hsfz")
HSFZ = scapy_hsfz.HSFZ

# tester 0xF4 asks the DME (0x12) for its VIN: length 5 (two addresses + 22 F1 90)
READ_VIN = bytes.fromhex("00000005 0001 F4 12 22F190")


def test_diagnostic_message_bytes() -> None:
    frame = hsfz.diagnostic_message(0xF4, 0x12, bytes.fromhex("22F190"))
    assert frame.encode() == READ_VIN
    assert (frame.source, frame.target, frame.payload) == (0xF4, 0x12, bytes.fromhex("22F190"))


def test_acknowledge_echoes_the_request_start() -> None:
    request = hsfz.diagnostic_message(0xF4, 0x12, bytes.fromhex("2EF1900102030405"))
    ack = hsfz.acknowledge(request)
    assert ack.encode() == bytes.fromhex("00000007 0002 F4 12 2EF1900102")


def test_identification_round_trip() -> None:
    assert bytes.fromhex("00000000 0011") == hsfz.IDENTIFICATION_REQUEST
    ident = HsfzIdentity(0x10, "001a37c0ffee", "WBA8E9C50GK123456")
    raw = ident.encode()
    # DIAGADR is the gateway's address in hex: a car's central gateway (0x10) says DIAGADR10
    assert raw[6:] == b"DIAGADR10BMWMAC001A37C0FFEEBMWVINWBA8E9C50GK123456"
    assert hsfz.parse_identification(raw) == HsfzIdentity(0x10, "001A37C0FFEE", "WBA8E9C50GK123456")


@pytest.mark.parametrize(("text", "address"), [(b"10", 0x10), (b"40", 0x40), (b"5F", 0x5F)])
def test_diagadr_is_read_as_hex_as_gateways_send_it(text: bytes, address: int) -> None:
    raw = Frame(
        ControlWord.VEHICLE_IDENTIFICATION,
        b"DIAGADR" + text + b"BMWMAC001A37C0FFEEBMWVINWBA8E9C50GK123456",
    ).encode()
    assert hsfz.parse_identification(raw).diag_address == address
    assert HsfzIdentity(address, "001A37C0FFEE", "WBA8E9C50GK123456").encode() == raw


@pytest.mark.parametrize(
    "raw",
    [
        bytes.fromhex("00000000 0001"),  # a datagram that is a diagnostic message
        Frame(ControlWord.VEHICLE_IDENTIFICATION, b"DIAGADR16BMWMAC001A37").encode(),
        Frame(ControlWord.VEHICLE_IDENTIFICATION, b"hello").encode() + b"x",
        b"\x00\x00",
    ],
)
def test_bad_identification_answers_are_refused(raw: bytes) -> None:
    with pytest.raises(FrameError):
        hsfz.parse_identification(raw)


def test_a_header_announcing_too_much_is_refused_before_buffering() -> None:
    decoder = Decoder()
    with pytest.raises(FrameError, match="more than"):
        decoder.feed(bytes.fromhex("7FFFFFFF 0001") + b"\x00" * 10)
    assert decoder.pending == 0


frames = st.builds(
    Frame,
    st.sampled_from([c.value for c in ControlWord]),
    st.binary(max_size=300),
)


@given(st.lists(frames, max_size=8), st.lists(st.integers(1, 64), max_size=40))
def test_any_split_of_the_stream_gives_the_same_frames(sent: list[Frame], cuts: list[int]) -> None:
    stream = b"".join(f.encode() for f in sent)
    decoder, got, pos = Decoder(), [], 0
    for cut in [*cuts, len(stream)]:
        got += decoder.feed(stream[pos : pos + cut])
        pos += cut
    got += decoder.feed(stream[pos:])
    assert got == sent
    assert decoder.pending == 0


@given(st.binary(max_size=200))
def test_garbage_gives_frames_or_a_frame_error(raw: bytes) -> None:
    try:
        Decoder(max_data=1024).feed(raw)
    except FrameError:
        pass


@given(st.integers(0, 0xFF), st.integers(0, 0xFF), st.binary(max_size=200))
def test_scapy_reads_our_frames_and_we_read_scapys(source: int, target: int, uds: bytes) -> None:
    ours = hsfz.diagnostic_message(source, target, uds).encode()
    theirs = HSFZ(ours)
    assert (theirs.length, theirs.control, theirs.source, theirs.target) == (
        len(uds) + 2,
        1,
        source,
        target,
    )
    built = bytes(HSFZ(control=1, source=source, target=target) / uds)
    assert built == ours
    (frame,) = Decoder().feed(built)
    assert frame.payload == uds
