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
from firmware_py.uds.fault_memory import normal_dtc as normal_dtc  # one DTC parser: box and portal

VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
YEAR_CODES = "ABCDEFGHJKLMNPRSTVWXY123456789"
"""model year codes in order: A = 1980 (and 2010), ... 9 = 2009 (and 2039)"""


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


def display_dtc(code: str) -> str:
    """``12A100`` as the tablet shows it: ``P12A1-00``."""
    return dtc_code(int(code, 16))
