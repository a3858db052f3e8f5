"""Inputs and outputs of the execution workflows and activities: ids and outcomes, never tokens."""

from __future__ import annotations

import dataclasses

# The phase an activity reports when the execution's row is gone (deleted): its workflow ends
# without anything to record or deliver.
PHASE_DELETED = 0


@dataclasses.dataclass
class ExecutionPolicy:
    """Timeouts and retries, fixed when the workflow starts (so replays see the same values)."""

    timeout_seconds: float = 600.0
    activity_heartbeat_timeout: float = 30.0
    model_max_attempts: int = 3
    model_retry_initial_interval: float = 1.0
    callback_max_attempts: int = 5
    callback_retry_initial_interval: float = 1.0


@dataclasses.dataclass
class ApprovalPolicy:
    """Which tool calls wait for a person's approval (AgentSpec.tool_approval), fixed when the
    workflow starts. Absent (None) in the input of an agent whose calls never wait."""

    every_tool: bool  # TOOL_APPROVAL_MODE_ALL; otherwise only `tools`.
    tools: list[str]  # "<server>.<tool>" names.
    timeout_seconds: float
    fail_on_timeout: bool  # Otherwise a call nobody decided on is rejected.


@dataclasses.dataclass
class ExecutionWorkflowInput:
    execution_id: str
    policy: ExecutionPolicy
    # Correlates the workflow's log lines with the runner's and the service's (not a secret).
    handshake_id: str = ""
    # The model-turn budget of an agent with tools, fixed at the start: 0 (an agent without
    # tools, and every run started before tools existed) keeps the one `run_agent` activity.
    max_steps: int = 0
    # Tool calls that wait for approval; None (every run started before approvals existed) for
    # none.
    approval: ApprovalPolicy | None = None
    # Another execution of the session had not ended when this one was created: it waits for
    # the earlier ones to end before it runs (sessions run one execution at a time).
    session_queue: bool = False
    # The session was drawn for this execution (none was named): it has no history to read.
    fresh_session: bool = False


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
    # As in ExecutionWorkflowInput: spares the run its query for the session's history.
    fresh_session: bool = False


@dataclasses.dataclass
class RunAgentOutput:
    """The execution's recorded end (the agent's, or an earlier writer's such as a cancel) and
    where its callback stands after the activity's own delivery attempt."""

    phase: int
    callback_state: int


@dataclasses.dataclass
class CallerSweepInput:
    """Input of the service's one caller-heartbeat workflow."""

    # How long one activity sweeps before the workflow continues as new (keeps history short).
    run_seconds: float = 600.0
    # A dead sweeper is replaced by another replica's worker within this timeout.
    heartbeat_timeout: float = 30.0


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


# The agent loop of an agent with tools (workflows.AgentExecutionWorkflow._loop). The workflow
# holds only this conversation state; secret values are masked in all of it, since it is
# workflow history.


@dataclasses.dataclass
class LoopToolCall:
    """A tool call the model asked for, and the step that records it."""

    index: int  # The step's index.
    call_id: str  # The model's id of the call, echoed with its result.
    name: str  # The name the model called ("<server>__<tool>").
    server: str  # Empty when the name is no tool of the agent's.
    tool: str
    arguments: str  # JSON text, secret values masked.


@dataclasses.dataclass
class LoopToolResult:
    call_id: str
    text: str  # Bounded, secret values masked.
    is_error: bool = False


@dataclasses.dataclass
class LoopTurn:
    """One model turn that called tools, and what the tools returned."""

    text: str
    calls: list[LoopToolCall]
    results: list[LoopToolResult]


@dataclasses.dataclass
class ModelTurnInput:
    execution_id: str
    turns: list[LoopTurn]
    next_index: int  # The index of the next step to record.
    # Its gated calls are recorded as awaiting approval.
    approval: ApprovalPolicy | None = None


@dataclasses.dataclass
class ModelTurnOutput:
    """Either the recorded end (`ended`: the model answered, and the activity recorded it and
    made the first callback attempt, as `run_agent` does) or the tool calls to make."""

    calls: list[LoopToolCall]
    text: str = ""
    next_index: int = 0
    ended: RunAgentOutput | None = None


@dataclasses.dataclass
class CallToolInput:
    execution_id: str
    call: LoopToolCall
    # The activity's attempts: the last one reports a failure as the tool's error result (for
    # the model) instead of raising it.
    max_attempts: int


@dataclasses.dataclass
class ToolDecision:
    """The decision on a gated tool call: the signal that wakes the workflow, and what the
    timeout activity finds recorded."""

    step_index: int
    approve: bool
    decided_by: str = ""
    reason: str = ""
    timed_out: bool = False


@dataclasses.dataclass
class ApprovalTimeoutInput:
    execution_id: str
    call: LoopToolCall
    fail: bool  # The execution fails (rather than the call being rejected).
    timeout_seconds: float


@dataclasses.dataclass
class DelegateInput:
    """A model's call of a sub-agent (`call.server` is "agents", `call.tool` its name)."""

    execution_id: str
    call: LoopToolCall


@dataclasses.dataclass
class DelegationEndedInput:
    """What a sub-agent step ended with, to record on the parent's step."""

    execution_id: str
    call: LoopToolCall
    result: LoopToolResult


@dataclasses.dataclass
class CancelChildrenInput:
    execution_id: str
    reason: str
