"""Tenancy: the credential that created each execution, and the index of org-scoped keyset pages."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for executions created before credentials had names: the operator's.
    op.add_column("executions", sa.Column("created_by", sa.String(255)))
    op.create_index("ix_executions_org_created_at_id", "executions", ["org", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_executions_org_created_at_id", "executions")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("created_by")
