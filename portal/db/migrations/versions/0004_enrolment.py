"""enrolment in the portal's database: enrolled boxes, waiting requests, refused claims; the
boxes' last state (online, version, car) on workshop_boxes

Before this revision the enrolment records were a SQLite file of their own (tables boxes,
requests, claim_failures); a file of that kind opened as the portal's database keeps its records:
they are copied into the new tables and the old tables dropped.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_TABLES = ("boxes", "requests", "claim_failures")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "enrolled_boxes",
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=False),
        sa.Column("serial", sa.String(length=50), nullable=False),
        sa.Column("key_fp", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("state IN ('claimed', 'revoked')", name=op.f("ck_enrolled_boxes_state")),
        sa.PrimaryKeyConstraint("device", name=op.f("pk_enrolled_boxes")),
    )
    op.create_table(
        "enrolment_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("key_fp", sa.String(length=64), nullable=False),
        sa.Column("csr", sa.Text(), nullable=False),
        sa.Column("proof", sa.String(length=64), nullable=False),
        sa.Column("first_seen", sa.BigInteger(), nullable=False),
        sa.Column("last_seen", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolment_requests")),
        sa.UniqueConstraint("device", "key_fp", "proof", name="uq_enrolment_requests_device_key"),
    )
    with op.batch_alter_table("enrolment_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrolment_requests_device"), ["device"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_enrolment_requests_last_seen"), ["last_seen"], unique=False
        )
    op.create_table(
        "claim_refusals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("workshop_id", sa.Integer(), nullable=True),
        sa.Column("wrong_code", sa.Boolean(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workshop_id"], ["workshops.id"], name=op.f("fk_claim_refusals_workshop_id_workshops")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_refusals")),
    )
    with op.batch_alter_table("claim_refusals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claim_refusals_device"), ["device"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_claim_refusals_workshop_id"), ["workshop_id"], unique=False
        )
    with op.batch_alter_table("workshop_boxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("online", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("seen_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("version", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("vin", sa.String(length=17), nullable=True))
        batch_op.add_column(sa.Column("vehicle", sa.String(length=80), nullable=True))
    _take_over_an_old_enrolment_file()


def _take_over_an_old_enrolment_file() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or not set(OLD_TABLES) <= set(
        sa.inspect(bind).get_table_names()
    ):
        return
    op.execute(
        "INSERT INTO enrolled_boxes (device, state, certificate, serial, key_fp, claimed_at, "
        "revoked_at) SELECT device, state, certificate, serial, key_fp, CAST(claimed AS INTEGER), "
        "CAST(revoked AS INTEGER) FROM boxes"
    )
    op.execute(
        "INSERT INTO enrolment_requests (device, key_fp, csr, proof, first_seen, last_seen) "
        "SELECT device, key_fp, csr, proof, CAST(first_seen AS INTEGER), "
        "CAST(last_seen AS INTEGER) FROM requests"
    )
    op.execute(
        "INSERT INTO claim_refusals (device, workshop_id, wrong_code, at) "
        "SELECT device, NULL, 1, CAST(at AS INTEGER) FROM claim_failures"
    )
    for table in OLD_TABLES:
        op.drop_table(table)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("workshop_boxes", schema=None) as batch_op:
        for column in ("vehicle", "vin", "version", "seen_at", "online"):
            batch_op.drop_column(column)
    with op.batch_alter_table("claim_refusals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_claim_refusals_workshop_id"))
        batch_op.drop_index(batch_op.f("ix_claim_refusals_device"))
    op.drop_table("claim_refusals")
    with op.batch_alter_table("enrolment_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrolment_requests_last_seen"))
        batch_op.drop_index(batch_op.f("ix_enrolment_requests_device"))
    op.drop_table("enrolment_requests")
    op.drop_table("enrolled_boxes")
