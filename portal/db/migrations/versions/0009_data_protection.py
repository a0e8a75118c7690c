"""data protection: VIN erasures recorded (keyed hash), the hash key, deleted workshops

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 19:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "privacy_erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("vin_hash", sa.String(length=80), nullable=False),
        sa.Column("asked_by", sa.String(length=200), nullable=False),
        sa.Column("done_by", sa.String(length=254), nullable=False),
        sa.Column("workshop_id", sa.Integer(), nullable=True),
        sa.Column("deleted", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_erasures")),
    )
    op.create_index(
        op.f("ix_privacy_erasures_vin_hash"), "privacy_erasures", ["vin_hash"], unique=False
    )
    op.create_index(
        op.f("ix_privacy_erasures_workshop_id"), "privacy_erasures", ["workshop_id"], unique=False
    )
    op.create_table(
        "privacy_keys",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_keys")),
    )
    with op.batch_alter_table("workshops") as batch:
        batch.add_column(sa.Column("deleted_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workshops") as batch:
        batch.drop_column("deleted_at")
    op.drop_table("privacy_keys")
    op.drop_index(op.f("ix_privacy_erasures_workshop_id"), table_name="privacy_erasures")
    op.drop_index(op.f("ix_privacy_erasures_vin_hash"), table_name="privacy_erasures")
    op.drop_table("privacy_erasures")
