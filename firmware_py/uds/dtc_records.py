"""Decoding of a DTC's snapshot records (0x19 04) and extended data records (0x19 06), as
ISO 14229-1 lays them out, for what real ECUs send.

Why not udsoncan's decoding: udsoncan reads extended data with one size for every record of a
DTC, so records of different sizes (0x01 occurrence counter: 1 byte, a manufacturer's 0x30: 4
bytes) come out silently wrong; and it stops a snapshot with an error at the first DID it has no
codec for, losing the DIDs it had decoded. Neither answer says how long a record or a DID's data
is, so nothing after an unknown one can be decoded. Here the known part is decoded (DIDs by the
box's codecs, :mod:`.dids`; extended records by :data:`EXTENDED_RECORDS`) and the rest is kept
as raw hex under ``"raw"``, for the technician and the manufacturer's documentation.
"""

from __future__ import annotations

from typing import Any

from udsoncan import DidCodec

from firmware_py.uds.dids import DIDS, did_name

#: extended data records whose layout the box knows (ISO 14229-1 D.3 examples, BMW's use):
#: record number -> (name, size in bytes)
EXTENDED_RECORDS = {0x01: ("occurrence_counter", 1), 0x02: ("aging_counter", 1)}


def _hex(data: bytes) -> str:
    return data.hex(" ")


def _padding(data: bytes) -> bool:
    """Zero bytes after the last record (ECUs padding to a fixed length); tolerated as udsoncan's
    ``tolerate_zero_padding`` does."""
    return not any(data)


def _did_size(did: int) -> int | None:
    known = DIDS.get(did)
    if known is None:
        return None
    try:
        return len(known.codec)
    except DidCodec.ReadAllRemainingData:
        return None  # a DID of variable length: its end is not known inside a record


def decode_snapshots(data: bytes) -> list[dict[str, Any]]:
    """Snapshot records (recordNumber, numberOfIdentifiers, then DID + data each) -> one dict per
    record: ``{"record": 1, "mileage_km": 48011, ...}``; from the first DID the box cannot size,
    the rest of the answer is ``"raw"`` in that record."""
    records: list[dict[str, Any]] = []
    at = 0
    while at < len(data) and not _padding(data[at:]):
        if len(data) - at < 2:
            records.append({"record": None, "raw": _hex(data[at:])})
            break
        record: dict[str, Any] = {"record": data[at]}
        records.append(record)
        count, at = data[at + 1], at + 2
        for _ in range(count):
            did = int.from_bytes(data[at : at + 2], "big") if len(data) - at >= 2 else None
            size = _did_size(did) if did is not None else None
            if did is None or size is None or len(data) - at - 2 < size:
                record["raw"] = _hex(data[at:])
                return records
            codec = DIDS[did].codec
            record[did_name(did)] = codec.decode(data[at + 2 : at + 2 + size])
            at += 2 + size
    return records


def decode_extended(data: bytes) -> dict[str, Any]:
    """Extended data records (recordNumber, then its data) -> ``{"occurrence_counter": 3, ...}``;
    from the first record the box does not know, the rest is ``"raw"``."""
    out: dict[str, Any] = {}
    at = 0
    while at < len(data) and not _padding(data[at:]):
        known = EXTENDED_RECORDS.get(data[at])
        if known is None or len(data) - at - 1 < known[1]:
            out["raw"] = _hex(data[at:])
            break
        name, size = known
        out[name] = int.from_bytes(data[at + 1 : at + 1 + size], "big")
        at += 1 + size
    return out


__all__ = ["EXTENDED_RECORDS", "decode_extended", "decode_snapshots"]
