"""Sub-agents: an execution's parent (the execution that delegated to it), and the execution a
sub-agent step runs as."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("parent_execution_id", sa.String(64)))
        batch.create_index("ix_executions_parent_execution_id", ["parent_execution_id"])
    with op.batch_alter_table("execution_steps") as batch:
        batch.add_column(
            sa.Column("sub_execution_id", sa.String(64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("execution_steps") as batch:
        batch.drop_column("sub_execution_id")
    with op.batch_alter_table("executions") as batch:
        batch.drop_index("ix_executions_parent_execution_id")
        batch.drop_column("parent_execution_id")
