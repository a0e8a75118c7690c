"""What the information services read from a VIN and a fault code: the type code (which content
applies), the model year and serial (a campaign's scope), and the one form of a DTC the content
and the car's fault memory are compared in.

- Type code: VIN characters 4 to 7 (BMW's Typschluessel: ``WBAJA71...`` -> ``JA71``).
- Model year: the VIN's 10th character (ISO 3779 / 49 CFR 565), when it is a year code; European
  VINs need not carry one (``0`` in the simulated G30's), then the year is unknown.
- Serial: the last 7 characters (plant letter and number), what a campaign's VIN range bounds.
- DTC: the 3-byte UDS DTC as 6 hex digits (``12A100``), as ISO 14229 reads it; the SAE J2012
  display form the tablet shows (``P12A1-00``) and ``0x12A100`` are accepted and converted.
"""

from __future__ import annotations

import re

from firmware_py.uds.fault_memory import dtc_code

VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"
"""model year codes in order: A = 1980 (and 2010), ... 9 = 2009 (and 2039)"""
HEX_DTC = re.compile(r"^(?:0X)?([0-9A-F]{6})$")
SAE_DTC = re.compile(r"^([PCBU])([0-3])([0-9A-F]{3})-?([0-9A-F]{2})$")


def normal_vin(text: str) -> str | None:
    vin = text.strip().upper()
    return vin if VIN.match(vin) else None


def type_code(vin: str) -> str:
    return vin[3:7]


def serial(vin: str) -> str:
    return vin[10:17]


def model_year(vin: str, this_year: int) -> int | None:
    """The model year the VIN's 10th character names (the newest year of its 30-year cycle
    that is not after next year), or None when it names none."""
    code = vin[9]
    if code not in YEAR_CODES:
        return None
    year = 1980 + YEAR_CODES.index(code)
    while year + 30 <= this_year + 1:
        year += 30
    return year


def normal_dtc(text: str) -> str | None:
    """``12A100`` for ``12A100``, ``0x12A100`` or ``P12A1-00``; None for anything else."""
    t = text.strip().upper()
    if m := HEX_DTC.match(t):
        return m.group(1)
    if m := SAE_DTC.match(t):
        high = ("PCBU".index(m.group(1)) << 14) | (int(m.group(2)) << 12) | int(m.group(3), 16)
        return f"{high:04X}{m.group(4)}"
    return None


def display_dtc(code: str) -> str:
    """``12A100`` as the tablet shows it: ``P12A1-00``."""
    return dtc_code(int(code, 16))
