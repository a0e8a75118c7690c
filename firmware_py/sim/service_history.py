"""The simulated instrument cluster's electronic service booklet: the newest ``slots`` service
entries as fixed-size records, read as one DID and appended one record at a time with
WriteDataByIdentifier in the extended session, as a cluster keeps it (sample BMW-like DIDs of
this simulator, not the manufacturer's: docs/service-booklet.md).

The cluster checks what a cluster can: the record's size, and that its index follows the newest
one (an index that does not is refused with requestOutOfRange, so a tester that writes the same
entry twice after losing the answer does not make two). Its own code, not the box's client."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RECORD = struct.Struct(">HHBBIH16s28s")
"""index, year, month, day, mileage km, items (bit n-1: CBS item n), workshop, note"""
DID_HISTORY, DID_APPEND, DID_ODOMETER = 0x2520, 0x2521, 0x2530


@dataclass(frozen=True)
class HistoryEntrySpec:
    """A service entry the vehicle file gives the cluster at the start."""

    date: str
    """YYYY-MM-DD"""
    km: int
    items: tuple[int, ...]
    workshop: str
    note: str = ""

    def pack(self, index: int) -> bytes:
        year, month, day = (int(p) for p in self.date.split("-"))
        bits = sum(1 << (i - 1) for i in self.items)
        return RECORD.pack(
            index, year, month, day, self.km, bits, self.workshop.encode(), self.note.encode()
        )


@dataclass
class ServiceHistory:
    slots: int
    records: list[bytes] = field(default_factory=list)

    @classmethod
    def from_spec(cls, slots: int, entries: tuple[HistoryEntrySpec, ...]) -> ServiceHistory:
        history = cls(slots)
        for n, entry in enumerate(entries, start=1):
            history.records.append(entry.pack(n))
        del history.records[: -history.slots]
        return history

    def read(self) -> bytes:
        return bytes([len(self.records)]) + b"".join(self.records)

    def newest_index(self) -> int:
        return struct.unpack_from(">H", self.records[-1])[0] if self.records else 0

    def append(self, record: bytes) -> bool:
        """Keep ``record`` (newest last, the oldest dropped); False if its size or index is not
        what the cluster takes."""
        if len(record) != RECORD.size:
            return False
        if struct.unpack_from(">H", record)[0] != self.newest_index() + 1:
            return False
        self.records.append(bytes(record))
        del self.records[: -self.slots]
        return True
