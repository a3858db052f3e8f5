"""Inputs and outputs of the execution workflows and activities: ids and outcomes, never tokens."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ExecutionPolicy:
    """Timeouts and retries, fixed when the workflow starts (so replays see the same values)."""

    timeout_seconds: float = 600.0
    activity_heartbeat_timeout: float = 30.0
    caller_heartbeat_timeout: float = 60.0
    model_max_attempts: int = 3
    model_retry_initial_interval: float = 1.0
    callback_max_attempts: int = 5
    callback_retry_initial_interval: float = 1.0


@dataclasses.dataclass
class ExecutionWorkflowInput:
    execution_id: str
    policy: ExecutionPolicy
    # Correlates the workflow's log lines with the runner's and the service's (not a secret).
    handshake_id: str = ""


@dataclasses.dataclass
class ExecutionWorkflowOutput:
    phase: int


@dataclasses.dataclass
class CallbackWorkflowInput:
    execution_id: str
    policy: ExecutionPolicy


@dataclasses.dataclass
class CallbackWorkflowOutput:
    state: int


@dataclasses.dataclass
class ExecutionRef:
    execution_id: str


@dataclasses.dataclass
class MarkRunningOutput:
    started: bool  # False when the execution had already left PENDING (cancelled first).
    has_token: bool


@dataclasses.dataclass
class RunAgentOutput:
    output: str


@dataclasses.dataclass
class CallerHeartbeatOutput:
    caller_cancelled: bool
    reason: str = ""


@dataclasses.dataclass
class FinishInput:
    execution_id: str
    phase: int
    output: str = ""
    error_type: str = ""
    error_message: str = ""
    error_retryable: bool = False


@dataclasses.dataclass
class FinishOutput:
    phase: int  # The stored terminal phase, which may be an earlier writer's.


@dataclasses.dataclass
class DeliverCallbackInput:
    execution_id: str
    max_attempts: int


@dataclasses.dataclass
class DeliverCallbackOutput:
    state: int
