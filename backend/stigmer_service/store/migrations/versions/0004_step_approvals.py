"""Step approvals: where a gated tool call's approval stands, who decided and why."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("execution_steps") as batch:
        batch.add_column(sa.Column("approval", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("approval_by", sa.String(255), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("approval_reason", sa.Text, nullable=False, server_default=""))
        batch.add_column(sa.Column("approval_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("execution_steps") as batch:
        batch.drop_column("approval_at")
        batch.drop_column("approval_reason")
        batch.drop_column("approval_by")
        batch.drop_column("approval")
