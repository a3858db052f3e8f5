"""The structured log fields that name an execution and its handshake in every line about it."""

from __future__ import annotations

from backend.common import contract
from backend.stigmer_service.store.records import ExecutionRecord


def log_fields(execution: ExecutionRecord) -> dict[str, str]:
    return {
        "execution_id": execution.id,
        "workflow_id": execution.caller.workflow_id,
        "activity_id": execution.caller.activity_id,
        "token_hash": execution.token_hash,
        "handshake_id": contract.handshake_id(execution.idempotency_key),
    }
