"""workshop_boxes: which workshop a claimed box belongs to

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "workshop_boxes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("workshop_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("claimed_by", sa.Integer(), nullable=True),
        sa.Column("claimed_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["claimed_by"], ["users.id"], name=op.f("fk_workshop_boxes_claimed_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["workshop_id"], ["workshops.id"], name=op.f("fk_workshop_boxes_workshop_id_workshops")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workshop_boxes")),
        sa.UniqueConstraint("device", name=op.f("uq_workshop_boxes_device")),
    )
    with op.batch_alter_table("workshop_boxes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_workshop_boxes_workshop_id"), ["workshop_id"], unique=False
        )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("workshop_boxes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workshop_boxes_workshop_id"))
    op.drop_table("workshop_boxes")
