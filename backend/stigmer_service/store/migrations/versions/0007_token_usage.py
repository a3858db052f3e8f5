"""Token usage: what an execution's model calls used, as the providers reported it."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = ("input_tokens", "output_tokens", "model_calls")


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
