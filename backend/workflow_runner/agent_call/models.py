"""The contract between the DSL engine and the agent-call activity: plain dataclasses.

The engine evaluates a `call: agent` task's `with:` block inside the workflow and hands the result
to the activity as a `CallAgentInput`; the activity's result (completed later, by the Stigmer
service, through the task token) is a `CallAgentOutput`-shaped JSON object.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from backend.common import contract, secret_placeholders


@dataclasses.dataclass(frozen=True)
class SecretScope:
    """A run's secrets as its workflow sees them: `$secrets.NAME` is `{{secret:<seal>:NAME}}`
    for each name `use.secrets` declares. Activities resolve only placeholders with this seal and
    a declared name, so values never enter workflow history and data cannot forge one."""

    seal: str = ""
    names: tuple[str, ...] = ()

    def placeholders(self) -> dict[str, str]:
        """`$secrets`: each declared name's placeholder."""
        return {name: secret_placeholders.sealed(self.seal, name) for name in self.names}


# Activity names: the workflow side schedules them by name, so that it never imports gRPC code.
CALL_AGENT_ACTIVITY = "call_agent"
CANCEL_AGENT_CALL_ACTIVITY = "cancel_agent_call"

# Failures an agent call never retries: bad calls (unknown agent or secret, refused requests,
# by gRPC status name) and the agent's own failures, which the Stigmer service also sends
# non-retryable. Listed in the retry policy so that a mislabelled one still stops.
NON_RETRYABLE_ERROR_TYPES = [
    contract.AGENT_NOT_FOUND,
    contract.SECRET_NOT_FOUND,
    contract.INVALID_AGENT_CALL,
    contract.EXECUTION_TIMEOUT,
    contract.MODEL_ERROR,
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "FAILED_PRECONDITION",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "UNIMPLEMENTED",
    "OUT_OF_RANGE",
]


@dataclasses.dataclass
class CallAgentInput:
    """One agent call, with every expression already evaluated (secrets still as placeholders)."""

    agent: str  # The agent's slug.
    message: str
    org: str = ""
    scope: str = "organization"  # platform | organization | identity_account
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    model: str = ""  # Overrides the agent's model when set.
    timeout_seconds: float | None = None  # The execution's own timeout.
    temperature: float | None = None
    session_id: str = ""
    task_path: str = ""  # Where the call sits in the workflow document, for logs and errors.
    # The run's seal and declared names: only placeholders with both resolve (see SecretScope).
    secret_seal: str = ""
    secret_names: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class CallAgentOutput:
    """What a completed agent call returns to the workflow (the task's raw output).

    `steps` summarises the steps of an agent with tools, in order, one object each: `index`,
    `kind` ("message" or "tool_call"), `tool` ("server.tool", tool calls only), `error` (bool),
    `duration_ms` (int or None) and, for a call that waited for approval, `approval`
    ("approved", "rejected" or "timed_out"); never arguments or results. Empty for an agent
    without tools, and when an older service sent no `steps`.
    """

    execution_id: str
    output: str
    agent: str = ""
    agent_id: str = ""
    session_id: str = ""
    steps: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class CancelAgentCallInput:
    """Cancels the agent execution of a cancelled agent call (ids only, never the token).
    Empty `execution_id`: the executions of the calling workflow's agent calls whose
    cancellation it requested (the activity finds them: cancelled_calls.py)."""

    execution_id: str
    reason: str = "the calling workflow was cancelled"


@dataclasses.dataclass
class CancelAgentCallOutput:
    cancelled: bool  # False when the execution had already ended (or is unknown).
