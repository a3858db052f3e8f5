"""Phase, callback-state and outcome numbers, equal to the proto enums (a test checks that)."""

from __future__ import annotations

PHASE_PENDING = 1
PHASE_RUNNING = 2
PHASE_COMPLETED = 3
PHASE_FAILED = 4
PHASE_CANCELLED = 5
TERMINAL_PHASES = (PHASE_COMPLETED, PHASE_FAILED, PHASE_CANCELLED)

ROLE_SYSTEM = 1
ROLE_USER = 2
ROLE_ASSISTANT = 3
ROLE_TOOL = 4

CALLBACK_NOT_REQUESTED = 1
CALLBACK_WAITING = 2
CALLBACK_DELIVERED = 3
CALLBACK_ALREADY_CLOSED = 4
CALLBACK_FAILED = 5

OUTCOME_UNSPECIFIED = 0
OUTCOME_COMPLETED = 1
OUTCOME_FAILED = 2
OUTCOME_CANCELLED = 3

OUTCOME_OF_PHASE = {
    PHASE_COMPLETED: OUTCOME_COMPLETED,
    PHASE_FAILED: OUTCOME_FAILED,
    PHASE_CANCELLED: OUTCOME_CANCELLED,
}

# How the callback closed the caller's activity, by phase (log fields and metric labels).
OUTCOME_NAMES = {
    PHASE_COMPLETED: "completed",
    PHASE_FAILED: "failed",
    PHASE_CANCELLED: "cancelled",
}

# Error types of the contract with the runner.
ERROR_MODEL = "ModelError"
ERROR_TRANSIENT_MODEL = "TransientModelError"
ERROR_TIMEOUT = "ExecutionTimeout"
ERROR_AGENT_NOT_FOUND = "AgentNotFound"
ERROR_CANCELLED = "ExecutionCancelled"  # Sent when the service, not the caller, cancelled.
