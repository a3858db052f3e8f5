"""What the workflow runner and the Stigmer service must agree on, though neither imports the
other: failure types an agent call ends with, and how a handshake and its token are named in
logs. Each lives here once; a change here is a change of the contract between the processes."""

from __future__ import annotations

import hashlib

# Failure types of an agent call, as the caller's activity sees them (ApplicationError.type) and
# as a document's `catch.errors.with.type` filters them.
AGENT_NOT_FOUND = "AgentNotFound"
SECRET_NOT_FOUND = "SecretNotFound"
INVALID_AGENT_CALL = "InvalidAgentCall"
MODEL_ERROR = "ModelError"
TRANSIENT_MODEL_ERROR = "TransientModelError"
EXECUTION_TIMEOUT = "ExecutionTimeout"
# An agent with tools that did not answer within its `max_steps` model turns.
MAX_STEPS_EXCEEDED = "MaxStepsExceeded"
# A tool call that needed a person's approval got no decision in time (on_timeout: fail).
TOOL_APPROVAL_TIMED_OUT = "ToolApprovalTimedOut"
# Sent when the service, not the caller, cancelled the execution.
EXECUTION_CANCELLED = "ExecutionCancelled"


def token_hash(token: bytes) -> str:
    """First 12 hex digits of sha256(token): correlates the two processes' log lines without
    revealing the token, a bearer capability. No token has no hash."""
    return hashlib.sha256(token).hexdigest()[:12] if token else ""


def handshake_id(idempotency_key: str) -> str:
    """The correlation id of one token handshake, the same in the runner and the service.

    Derived from the idempotency key (workflow id, run id, activity id), so every retried
    attempt of the caller's activity, and the one execution they share, carry the same id.
    """
    if not idempotency_key:
        return ""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:12]
