"""package store: the signed flash packages the operator uploaded (files on disk, rows here)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 16:20:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stored_packages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("ecu", sa.String(length=32), nullable=False),
        sa.Column("ecu_address", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("sw_versions", sa.Text(), nullable=False),
        sa.Column("publisher", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_packages")),
        sa.UniqueConstraint("sha256", name=op.f("uq_stored_packages_sha256")),
    )


def downgrade() -> None:
    op.drop_table("stored_packages")
