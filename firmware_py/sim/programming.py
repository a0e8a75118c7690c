"""What a simulated ECU's bootloader does: its flash region, and the services and routines that
program it (RequestDownload 0x34, TransferData 0x36, RequestTransferExit 0x37; erase memory,
check memory, check programming dependencies).

:class:`Programming` is mixed into :class:`~firmware_py.sim.ecu.EcuModel`; the general response
behaviour (session, security, lengths) has been checked before any method here runs.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from firmware_py.sim.faults import EcuFaults
from firmware_py.sim.maps import MapArea
from firmware_py.sim.response_behaviour import Nack, Nrc
from firmware_py.sim.vehicle import FlashRegion

HEADER_MAGIC = b"VCIS"


@dataclass
class Region:
    address: int
    size: int
    max_block_length: int
    memory: bytearray
    valid: bool = True
    erased: bool = False

    @classmethod
    def new(cls, flash: FlashRegion, sw_version: str) -> Region:
        """A region as the vehicle file has it: erased but for the application's header."""
        memory = bytearray(b"\xff") * flash.size
        header = HEADER_MAGIC + sw_version.encode().ljust(16, b" ")
        memory[: len(header)] = header
        return cls(flash.address, flash.size, flash.max_block_length, memory)

    def contains(self, address: int, length: int) -> bool:
        return self.address <= address and address + length <= self.address + self.size

    def sha256(self) -> str:
        return hashlib.sha256(self.memory).hexdigest()

    def write(self, offset: int, data: memoryview) -> None:
        self.memory[offset : offset + len(data)] = data


@dataclass
class Transfer:
    region: Region | MapArea
    offset: int
    remaining: int
    expected_counter: int = 1
    blocks: int = 0


class Programming:
    """The bootloader's services and routines (mixed into the ECU model)."""

    region: Region | None
    maps: MapArea | None
    """a head unit's navigation map storage (firmware_py/sim/maps.py)"""
    transfer: Transfer | None
    battery: Any
    faults: EcuFaults
    sw_version: str
    svk: list[list[Any]]

    def ecu_reset(self) -> None:
        raise NotImplementedError

    def _flash(self) -> Region:
        assert self.region is not None  # the services and routines exist only with a region
        return self.region

    # -- routines ---------------------------------------------------------------------
    def _check_dependencies(self, option: bytes) -> bytes:
        return b"\x00" if self._flash().valid else b"\x01"

    def _erase(self, option: bytes) -> bytes:
        region = self._flash()
        if len(option) != 8:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        address, length = struct.unpack(">II", option)
        if not region.contains(address, length):
            raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
        if self.battery.volts < 11.5:
            raise Nack(Nrc.CONDITIONS_NOT_CORRECT)
        start = address - region.address
        region.memory[start : start + length] = b"\xff" * length
        region.valid, region.erased = False, True
        self.transfer = None
        return b"\x00"

    def _check_memory(self, option: bytes) -> bytes:
        """Address, length and the SHA-256 of what the tester sent."""
        region = self._flash()
        if len(option) != 40:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        address, length = struct.unpack(">II", option[:8])
        if self.transfer is not None:
            raise Nack(Nrc.REQUEST_SEQUENCE_ERROR)
        if self.maps is not None and self.maps.contains(address, max(length, 1)):
            return b"\x00" if self.maps.check(address, length, option[8:]) else b"\x01"
        if not region.contains(address, length):
            raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
        start = address - region.address
        ok = hashlib.sha256(region.memory[start : start + length]).digest() == option[8:]
        if ok and start == 0 and region.memory[:4] == HEADER_MAGIC:
            region.valid, region.erased = True, False
            version = region.memory[4:20].decode("ascii", "replace").strip()
            self.sw_version = version
            parts = [int(p) for p in version.split(".") if p.isdigit()][:3]
            for entry in self.svk:
                if entry[0] == 0x06 and len(parts) == 3:
                    entry[2] = tuple(parts)
        return b"\x00" if ok else b"\x01"

    # -- services ---------------------------------------------------------------------
    def _request_download(self, req: bytes, now: float) -> bytes:
        if req[1] != 0x00:
            raise Nack(Nrc.REQUEST_OUT_OF_RANGE)  # dataFormatIdentifier: no compression/encryption
        size_length, address_length = req[2] >> 4, req[2] & 0x0F
        if not (1 <= size_length <= 4 and 1 <= address_length <= 4):
            raise Nack(Nrc.REQUEST_OUT_OF_RANGE)  # addressAndLengthFormatIdentifier
        if len(req) != 3 + address_length + size_length:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        address = int.from_bytes(req[3 : 3 + address_length], "big")
        length = int.from_bytes(req[3 + address_length :], "big")
        region = self._flash()
        maps = self.maps
        if length and maps is not None and maps.contains(address, length):
            if self.transfer is not None:
                raise Nack(Nrc.CONDITIONS_NOT_CORRECT)
            target: Region | MapArea = maps
            offset = maps.begin(address, length)  # no erase: a new map or the rest of one
        else:
            if length == 0 or not region.contains(address, length):
                raise Nack(Nrc.REQUEST_OUT_OF_RANGE)
            if not region.erased:
                raise Nack(Nrc.UPLOAD_DOWNLOAD_NOT_ACCEPTED)
            if self.transfer is not None:
                raise Nack(Nrc.CONDITIONS_NOT_CORRECT)
            target, offset = region, address - region.address
        self.transfer = Transfer(target, offset, length)
        mbl = target.max_block_length
        return (
            bytes([0x74, 0x20]) + struct.pack(">H", mbl)
            if mbl <= 0xFFFF
            else bytes([0x74, 0x40]) + struct.pack(">I", mbl)
        )

    def _transfer_data(self, req: bytes, now: float) -> bytes | None:
        t = self.transfer
        if t is None:
            raise Nack(Nrc.REQUEST_SEQUENCE_ERROR)
        counter = req[1]
        previous = (t.expected_counter - 1) & 0xFF
        if counter == previous and t.blocks > 0:
            return bytes([0x76, counter])  # a repeated block (tester retried): write nothing
        if counter != t.expected_counter:
            raise Nack(Nrc.WRONG_BLOCK_SEQUENCE_COUNTER)
        n = len(req) - 2
        if len(req) > t.region.max_block_length:
            raise Nack(Nrc.INCORRECT_MESSAGE_LENGTH)
        if n > t.remaining or n == 0:
            raise Nack(Nrc.TRANSFER_DATA_SUSPENDED)
        if self.battery.volts < 11.0:
            raise Nack(Nrc.CONDITIONS_NOT_CORRECT)
        t.region.write(t.offset, memoryview(req)[2:])
        t.offset += n
        t.remaining -= n
        t.blocks += 1
        t.expected_counter = (t.expected_counter + 1) & 0xFF
        reset_after = self.faults.reset_after_blocks
        if reset_after and t.blocks >= reset_after:
            self.faults.reset_after_blocks = 0  # once
            self.ecu_reset()
            return None  # it reset before answering
        return bytes([0x76, counter])

    def _transfer_exit(self, req: bytes, now: float) -> bytes:
        # a transferRequestParameterRecord after the SID is accepted (and not used)
        t = self.transfer
        if t is None or t.remaining:
            raise Nack(Nrc.REQUEST_SEQUENCE_ERROR)
        self.transfer = None
        return b"\x77"
