"""The tables of the information services (repair information, wiring diagrams, technical
campaigns and service bulletins, labour values, parts and software parts: portal/content/).

One content set is current at a time: an import (portal/content/store.py) replaces every row of
these tables in one transaction, and adds a row to ``info_imports`` whose newest row names the
current content version. The full-text index is not a model: on SQLite it is the FTS5 table
``info_search`` over (title, body, vehicles) of :class:`InfoDocument` by rowid, on PostgreSQL the
stored generated tsvector column ``info_search_tsv`` of ``info_documents`` with its GIN index
``info_search_pg`` (both made by Alembic revision 0007); the names in :data:`SEARCH_INDEX_NAMES`
are therefore left out when models and schema are compared.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.db.models import Base

SEARCH_INDEX_NAMES = ("info_search",)
"""name prefixes of the full-text index objects that only the migration makes (FTS5 and its
shadow tables on SQLite, the GIN index on PostgreSQL)"""


def managed_by_models(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic ``include_name``: False for the full-text index objects (not models)."""
    return not (name or "").startswith(SEARCH_INDEX_NAMES)


class InfoImport(Base):
    """One content set imported: the newest row is the current content (its version is what a
    box compares to refresh its cache)."""

    __tablename__ = "info_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    """the content set's name from its manifest ("sample" for the generated one)"""
    content_version: Mapped[str] = mapped_column(String(40))
    format_version: Mapped[int] = mapped_column(Integer)
    work_units_per_hour: Mapped[int] = mapped_column(Integer)
    documents: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[int] = mapped_column(BigInteger)


class InfoVehicle(Base):
    """A vehicle type of the content: the type code (VIN characters 4 to 7) and its series."""

    __tablename__ = "info_vehicles"

    type_code: Mapped[str] = mapped_column(String(8), primary_key=True)
    series: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))


class InfoDocument(Base):
    """A searchable document: a repair instruction, a wiring diagram, a service bulletin or
    technical campaign, a part (``kind``), by its reference in the content (``ref``). ``body`` is
    the text the search reads; ``data`` the whole record as JSON for its page."""

    __tablename__ = "info_documents"
    __table_args__ = (UniqueConstraint("kind", "ref", name="uq_info_documents_kind_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    vehicles: Mapped[str] = mapped_column(Text)
    """the type codes it applies to, space-separated, or ``allvehicles``: a column of the
    full-text index, so that the vehicle filter is part of the search itself"""
    data: Mapped[str] = mapped_column(Text)


class InfoLink(Base):
    """What a document names: a DTC, an ECU, a type code (``*``: every vehicle), a part number,
    a wiring diagram, a labour operation. Links from the car (a DTC, an ECU) go through here."""

    __tablename__ = "info_links"
    __table_args__ = (Index("ix_info_links_kind_value", "kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("info_documents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(64))


class InfoCampaignVin(Base):
    """A technical campaign's state for one vehicle: open (still to be done) or done."""

    __tablename__ = "info_campaign_vins"

    document_id: Mapped[int] = mapped_column(ForeignKey("info_documents.id"), primary_key=True)
    vin: Mapped[str] = mapped_column(String(17), primary_key=True, index=True)
    status: Mapped[str] = mapped_column(String(8))


class InfoLabour(Base):
    """A labour value: an operation's work units for one series."""

    __tablename__ = "info_labour"
    __table_args__ = (UniqueConstraint("code", "series", name="uq_info_labour_code_series"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    series: Mapped[str] = mapped_column(String(16), index=True)
    description: Mapped[str] = mapped_column(String(300))
    """in English; :attr:`translations` holds the other languages the content set has"""
    work_units: Mapped[int] = mapped_column(Integer)
    translations: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    """JSON ``{"de": "..."}``: the description in other languages (docs/content-format.md)"""


class InfoDrawing(Base):
    """An SVG drawing (a wiring diagram, a parts illustration) as sanitised at the import."""

    __tablename__ = "info_drawings"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    svg: Mapped[str] = mapped_column(Text)


class InfoSoftware(Base):
    """A software part (an SVK entry) the content knows for an ECU's hardware part number."""

    __tablename__ = "info_software"

    id: Mapped[int] = mapped_column(primary_key=True)
    ecu: Mapped[str] = mapped_column(String(16))
    part_number: Mapped[str] = mapped_column(String(32), index=True)
    process_class: Mapped[str] = mapped_column(String(8))
    sgbm_id: Mapped[str] = mapped_column(String(8))
    version: Mapped[str] = mapped_column(String(16))
