"""labour values' descriptions in other languages than English (JSON, {"de": "..."})

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 23:15:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("info_labour", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("translations", sa.Text(), server_default="{}", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("info_labour", schema=None) as batch_op:
        batch_op.drop_column("translations")
