"""The database schema (SQLAlchemy Core); migrations under `migrations/` create it."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org", sa.String(255), nullable=False),
    sa.Column("slug", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("annotations", sa.JSON, nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),  # AgentSpec in proto JSON form.
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("execution_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_execution_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("org", "slug", name="uq_agents_org_slug"),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("org", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("agent_id", sa.String(64), nullable=False, index=True),
    sa.Column("session_id", sa.String(64), nullable=False, index=True),
    sa.Column("message", sa.Text, nullable=False),
    # ExecutionConfig and CallerInfo in proto JSON form; nothing secret.
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("caller", sa.JSON, nullable=False),
    # {name: {"value": str, "is_secret": bool}}; secret values are Fernet ciphertext.
    sa.Column("runtime_env", sa.JSON, nullable=False),
    sa.Column("token_enc", sa.Text),  # The callback token, Fernet-encrypted; NULL when none.
    sa.Column("token_hash", sa.String(16), nullable=False),
    sa.Column("idempotency_key", sa.String(512)),
    # The name of the credential that created it (NULL: before credentials had names).
    sa.Column("created_by", sa.String(255)),
    # The execution that delegated to this one (a sub-agent's); NULL for the API's own.
    sa.Column("parent_execution_id", sa.String(64), index=True),
    # What its model calls used (TokenUsage), retried calls included.
    sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("model_calls", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("phase", sa.Integer, nullable=False, index=True),
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
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # NULL keys never collide, so executions without a key are unconstrained.
    sa.UniqueConstraint("org", "idempotency_key", name="uq_executions_org_idempotency_key"),
    # Org-scoped lists page by (created_at, id).
    sa.Index("ix_executions_org_created_at_id", "org", "created_at", "id"),
)

messages = sa.Table(
    "execution_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "execution_id",
        sa.String(64),
        sa.ForeignKey("executions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("role", sa.Integer, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# The steps of an agent with tools (AgentStep), one row each, written as they happen.
steps = sa.Table(
    "execution_steps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "execution_id",
        sa.String(64),
        sa.ForeignKey("executions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("step_index", sa.Integer, nullable=False),
    sa.Column("kind", sa.Integer, nullable=False),
    sa.Column("tool_server", sa.String(64), nullable=False),
    sa.Column("tool_name", sa.String(255), nullable=False),
    # Secret values masked, as the API shows them.
    sa.Column("arguments", sa.Text, nullable=False),
    sa.Column("result", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("duration_ms", sa.Integer),  # NULL while a tool call runs.
    # The approval of a gated tool call (ApprovalState; 0: none needed), who decided and why.
    sa.Column("approval", sa.Integer, nullable=False, server_default="0"),
    sa.Column("approval_by", sa.String(255), nullable=False, server_default=""),
    sa.Column("approval_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("approval_at", sa.DateTime(timezone=True)),
    # The execution a sub-agent step runs as; empty for other kinds.
    sa.Column("sub_execution_id", sa.String(64), nullable=False, server_default=""),
    # A retried activity writes the same step again: it replaces, never duplicates.
    sa.UniqueConstraint("execution_id", "step_index", name="uq_execution_steps_index"),
)
