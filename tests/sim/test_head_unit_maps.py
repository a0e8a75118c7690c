"""The simulated head unit's map region (firmware_py/sim/maps.py) as pure logic: byte vectors,
no sockets. The activation codes are signed with a TEST key made here."""

from __future__ import annotations

import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_py.gateway.map_package import MapManifest, sign_activation
from firmware_py.sim.ecu import Battery, EcuModel, sim_key
from firmware_py.sim.vehicle import load_vehicle

VEHICLE = load_vehicle("g30")
MAP_ADDRESS = 0x40000000
SAMPLE = b"VCI SAMPLE MAP DATA" + bytes(range(256)) * 40  # generated, 10,259 bytes
OTHER_VIN = "WBA00000000000001"


def head_unit() -> EcuModel:
    spec = next(e for e in VEHICLE.ecus if e.name == "HU")
    return EcuModel(spec, VEHICLE, Battery(12.6))


def ask(model: EcuModel, hex_request: str) -> str:
    reply = model.handle(bytes.fromhex(hex_request), 0.0)
    return reply.response.hex().upper() if reply.response is not None else ""


def programming(m: EcuModel) -> None:
    ask(m, "1003")
    ask(m, "1002")
    seed = int(ask(m, "2711")[4:], 16)
    assert ask(m, f"2712{sim_key(seed, m.spec.address, 0x11):08X}") == "6712"


def send(m: EcuModel, data: bytes, offset: int = 0, block: int = 4000) -> None:
    answer = ask(m, "340044" + f"{MAP_ADDRESS + offset:08X}{len(data):08X}")
    assert answer.startswith("74"), answer
    for n, i in enumerate(range(0, len(data), block), start=1):
        assert ask(m, f"36{n & 0xFF:02X}" + data[i : i + block].hex()) == f"76{n & 0xFF:02X}"
    assert ask(m, "37") == "77"


def check(m: EcuModel, data: bytes) -> str:
    option = struct.pack(">II", MAP_ADDRESS, len(data)) + hashlib.sha256(data).digest()
    return ask(m, "31010202" + option.hex())


def code(vin: str, data: bytes, version: str = "2026-1") -> str:
    manifest = MapManifest(
        "SAMPLE_EUROPE", version, "http://127.0.0.1/x", len(data),
        hashlib.sha256(data).hexdigest(), "HU", MAP_ADDRESS, 0,
    )  # fmt: skip
    return sign_activation(Ed25519PrivateKey.generate(), "test", vin=vin, manifest=manifest)


def state(m: EcuModel) -> tuple[int, bytes, str]:
    raw = bytes.fromhex(ask(m, "22D0A0"))[3:]
    return struct.unpack(">I", raw[:4])[0], raw[4:36], raw[36:].decode()


def test_a_map_is_written_checked_and_activated_with_the_cars_code() -> None:
    m = head_unit()
    assert state(m) == (0, hashlib.sha256().digest(), "SAMPLE_EUROPE 2025-1")
    programming(m)
    send(m, SAMPLE)
    assert check(m, SAMPLE) == "7101020200"
    ask(m, "1101")
    ask(m, "1003")
    assert ask(m, "31010D20" + code(VEHICLE.vin, SAMPLE).encode().hex()) == "71010D2000"
    assert state(m) == (len(SAMPLE), hashlib.sha256(SAMPLE).digest(), "SAMPLE_EUROPE 2026-1")


def test_another_cars_code_or_another_maps_code_is_refused() -> None:
    m = head_unit()
    programming(m)
    send(m, SAMPLE)
    assert check(m, SAMPLE) == "7101020200"
    ask(m, "1101")
    ask(m, "1003")
    assert ask(m, "31010D20" + code(OTHER_VIN, SAMPLE).encode().hex()) == "7F3131"
    other_map = code(VEHICLE.vin, SAMPLE + b"x")
    assert ask(m, "31010D20" + other_map.encode().hex()) == "7F3131"
    assert ask(m, "31010D20" + b"not a code".hex()) == "7F3131"
    assert state(m)[2] == "SAMPLE_EUROPE 2025-1"  # the old map stays active


def test_an_unchecked_map_is_not_activated() -> None:
    m = head_unit()
    programming(m)
    send(m, SAMPLE[:5000])  # broke off: not checked
    ask(m, "1101")
    ask(m, "1003")
    assert ask(m, "31010D20" + code(VEHICLE.vin, SAMPLE).encode().hex()) == "7F3122"


def test_a_download_goes_on_where_the_stored_bytes_end_and_nowhere_else() -> None:
    m = head_unit()
    m.faults.reset_after_blocks = 2  # the head unit resets during the transfer
    programming(m)
    ask(m, "340044" + f"{MAP_ADDRESS:08X}{len(SAMPLE):08X}")
    assert ask(m, "3601" + SAMPLE[:4000].hex()) == "7601"
    assert ask(m, "3602" + SAMPLE[4000:8000].hex()) == ""  # reset instead of an answer
    held, digest, _ = state(m)
    assert held == 8000 and digest == hashlib.sha256(SAMPLE[:8000]).digest()
    programming(m)
    # a gap or an overlap is refused: a map is written in order
    assert ask(m, "340044" + f"{MAP_ADDRESS + 4000:08X}{len(SAMPLE) - 4000:08X}") == "7F3431"
    send(m, SAMPLE[8000:], offset=8000)
    assert check(m, SAMPLE) == "7101020200"


def test_a_code_that_is_no_code_is_refused_not_a_crash() -> None:
    import base64

    m = head_unit()
    programming(m)
    send(m, SAMPLE)
    assert check(m, SAMPLE) == "7101020200"
    ask(m, "1101")
    ask(m, "1003")
    deep = base64.urlsafe_b64encode(b"[" * 100_000).decode().rstrip("=")
    for option in (f"va1.{deep}.x", "va1.e30.x", "vt1.e30.x", "va1.!!.x", "\xff"):
        assert ask(m, "31010D20" + option.encode("latin-1").hex()) == "7F3131", option[:20]
