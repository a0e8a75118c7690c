"""pending_logins, address_attempts, revoked_tickets: state every portal process shares (behind a
load balancer the second factor's code and the per-address limit may reach another process; a
revocation made on one machine is sent by another's delivery worker)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "pending_logins",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_pending_logins_user_id_users")
        ),
        sa.PrimaryKeyConstraint("token_sha256", name=op.f("pk_pending_logins")),
    )
    with op.batch_alter_table("pending_logins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_logins_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_pending_logins_expires_at"), ["expires_at"], unique=False
        )
    op.create_table(
        "address_attempts",
        sa.Column("client", sa.String(length=128), nullable=False),
        sa.Column("times_ms", sa.Text(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("client", name=op.f("pk_address_attempts")),
    )
    with op.batch_alter_table("address_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_address_attempts_last_ms"), ["last_ms"], unique=False)

    op.create_table(
        "revoked_tickets",
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["revoked_by"], ["users.id"], name=op.f("fk_revoked_tickets_revoked_by_users")
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_revoked_tickets")),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("revoked_tickets")
    with op.batch_alter_table("address_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_address_attempts_last_ms"))
    op.drop_table("address_attempts")
    with op.batch_alter_table("pending_logins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_logins_expires_at"))
        batch_op.drop_index(batch_op.f("ix_pending_logins_user_id"))
    op.drop_table("pending_logins")
