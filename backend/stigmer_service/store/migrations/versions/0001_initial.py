"""Initial schema: agents, executions, execution messages."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org", sa.String(255), nullable=False),
        sa.Column("slug", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("annotations", sa.JSON, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("execution_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_execution_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("org", "slug", name="uq_agents_org_slug"),
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("org", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("caller", sa.JSON, nullable=False),
        sa.Column("runtime_env", sa.JSON, nullable=False),
        sa.Column("token_enc", sa.Text),
        sa.Column("token_hash", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(512)),
        sa.Column("phase", sa.Integer, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("error_type", sa.String(255), nullable=False),
        sa.Column("error_message", sa.Text, nullable=False),
        sa.Column("error_retryable", sa.Boolean, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("callback_state", sa.Integer, nullable=False),
        sa.Column("callback_outcome", sa.Integer, nullable=False),
        sa.Column("callback_attempts", sa.Integer, nullable=False),
        sa.Column("callback_last_error", sa.Text, nullable=False),
        sa.Column("callback_delivered_at", sa.DateTime(timezone=True)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("org", "idempotency_key", name="uq_executions_org_idempotency_key"),
    )
    op.create_index("ix_executions_agent_id", "executions", ["agent_id"])
    op.create_index("ix_executions_session_id", "executions", ["session_id"])
    op.create_index("ix_executions_phase", "executions", ["phase"])
    op.create_index("ix_executions_created_at", "executions", ["created_at"])
    op.create_table(
        "execution_messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "execution_id",
            sa.String(64),
            sa.ForeignKey("executions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.Integer, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_execution_messages_execution_id", "execution_messages", ["execution_id"])


def downgrade() -> None:
    op.drop_table("execution_messages")
    op.drop_table("executions")
    op.drop_table("agents")
