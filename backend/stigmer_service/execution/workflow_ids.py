"""The names by which the service's workflows are started and signalled: their types and ids.

Kept apart from the workflow classes so that activities (a parent agent starting or cancelling
a sub-agent's execution) can name them without importing the workflows that run them.
"""

from __future__ import annotations

EXECUTION_WORKFLOW = "AgentExecutionWorkflow"
CALLBACK_WORKFLOW = "CallbackWorkflow"
# The execution workflow's signal that stops its agent (the phase is written first).
CANCEL_SIGNAL = "cancel"
# The execution workflow's signal that an earlier execution of its session has ended.
SESSION_TURN_SIGNAL = "session_turn"


def workflow_id(execution_id: str) -> str:
    return f"agent-execution-{execution_id}"


def callback_workflow_id(execution_id: str, token_hash: str) -> str:
    return f"agent-execution-{execution_id}-callback-{token_hash}"
