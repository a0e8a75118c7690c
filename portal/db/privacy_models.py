"""The tables of data protection (docs/data-protection.md): the record of each VIN erasure done
in the portal's database (portal/vehicle_data.py), and the portal's key of the VIN hashes in it.

An erasure is recorded by a keyed hash of the VIN (HMAC-SHA256 under :class:`PrivacyKey`), never
the VIN: the same VIN gives the same hash on this portal, so a second request can be checked, but
a list of VINs cannot be tried against the record elsewhere. The key is in the database (not a
file of one machine) so that every portal process behind a load balancer hashes alike.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.db.models import Base


class PrivacyErasure(Base):
    """One VIN erasure: when, who asked and who ran it, for which workshop (None: the operator,
    every workshop), how many rows of each table were deleted or cleared."""

    __tablename__ = "privacy_erasures"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[int] = mapped_column(BigInteger)
    vin_hash: Mapped[str] = mapped_column(String(80), index=True)
    asked_by: Mapped[str] = mapped_column(String(200))
    """who asked for it (the vehicle's owner, as the workshop wrote it down)"""
    done_by: Mapped[str] = mapped_column(String(254))
    """the login (or ``command line``) that ran it"""
    workshop_id: Mapped[int | None] = mapped_column(Integer, index=True)
    """the workshop whose data was erased; None: the operator's erasure over every workshop
    (a plain number, no foreign key: the record outlives a deleted workshop's rows)"""
    deleted: Mapped[str] = mapped_column(Text)
    """JSON: table -> rows deleted or cleared"""


class PrivacyKey(Base):
    """The portal's key of the VIN hashes (one row)."""

    __tablename__ = "privacy_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[bytes] = mapped_column(LargeBinary)
