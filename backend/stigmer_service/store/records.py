"""Plain records the store reads and writes; protobuf stays at the gRPC edge."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any


@dataclasses.dataclass(frozen=True)
class CallerRef:
    """The Temporal activity that waits on an execution (the API's CallerInfo); not secret."""

    workflow_id: str = ""
    run_id: str = ""
    activity_id: str = ""
    namespace: str = ""
    task_queue: str = ""
    # The caller activity's heartbeat timeout (s); 0: not said (an older caller).
    heartbeat_timeout: float = 0.0


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """An agent's model call options (the API's ModelOptions); None: the provider's default.
    Where to send the call and with which key is the operator's provider configuration
    (`providers/catalog.py`): an agent's `base_url`/`api_key_env` are refused, and ignored when
    stored by an older service."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    timeout: datetime.timedelta | None = None


@dataclasses.dataclass(frozen=True)
class McpServerRecord:
    """One of an agent's MCP servers (the API's McpServer), as stored: env names, not values."""

    name: str
    transport: str  # "stdio" or "http".
    command: str = ""
    args: tuple[str, ...] = ()
    env_names: tuple[str, ...] = ()  # Runtime-env variables passed to a stdio server.
    url: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # May hold {{secret:NAME}} placeholders.
    enabled_tools: tuple[str, ...] = ()  # Empty: every tool.


@dataclasses.dataclass(frozen=True)
class SubAgentRecord:
    """An agent another may delegate to (the API's SubAgent): by id or slug, in the same org."""

    name: str
    agent: str
    description: str = ""


@dataclasses.dataclass
class AgentRecord:
    id: str
    org: str
    slug: str
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    spec: dict[str, Any]  # AgentSpec in proto JSON form, as stored: for the API's read view.
    # What the model call needs, read from `spec`.
    instructions: str
    model: str  # "provider/name"; empty: the default model.
    model_options: ModelOptions
    version: int
    execution_count: int
    last_execution_at: datetime.datetime | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


@dataclasses.dataclass
class MessageRecord:
    role: int
    content: str
    created_at: datetime.datetime


# StepKind values of the API (status.proto), as the store keeps them.
STEP_ASSISTANT_MESSAGE = 1
STEP_TOOL_CALL = 2
STEP_SUB_AGENT = 3
# ApprovalState values of the API (status.proto): 0 is a call that needed no approval.
APPROVAL_NONE = 0
APPROVAL_AWAITING = 1
APPROVAL_APPROVED = 2
APPROVAL_REJECTED = 3
APPROVAL_TIMED_OUT = 4


@dataclasses.dataclass
class StepRecord:
    """One step of an agent with tools (the API's AgentStep); secret values already masked."""

    index: int
    kind: int  # A STEP_* kind.
    started_at: datetime.datetime
    tool_server: str = ""
    tool_name: str = ""
    arguments: str = ""  # JSON text.
    result: str = ""
    error: str = ""
    duration: datetime.timedelta | None = None  # None while a tool call runs.
    approval: int = APPROVAL_NONE  # An APPROVAL_* state.
    approval_by: str = ""  # The name of the credential that decided.
    approval_reason: str = ""
    approval_at: datetime.datetime | None = None  # When decided or timed out.
    sub_execution_id: str = ""  # The execution a STEP_SUB_AGENT step runs as.


@dataclasses.dataclass
class EnvValue:
    value: str  # Ciphertext when `is_secret`.
    is_secret: bool


@dataclasses.dataclass
class NewExecution:
    """What a create request asks for, after validation."""

    org: str
    name: str
    labels: dict[str, str]
    agent_id: str
    session_id: str
    message: str
    # ExecutionConfig and CallerInfo in proto JSON form, as they are stored.
    config: dict[str, Any]
    caller: dict[str, Any]
    runtime_env: dict[str, tuple[str, bool]]  # Clear values; the store encrypts secrets.
    token: bytes
    idempotency_key: str
    # The name of the credential that asked (only it may re-create with the same key).
    created_by: str = ""
    # The execution that delegates to this one (a sub-agent's); empty for the API's own.
    parent_execution_id: str = ""
    # The session id was drawn for this execution (none was named): nothing else can be in it
    # yet, so it queues behind nothing.
    new_session: bool = False


@dataclasses.dataclass(frozen=True)
class PageCursor:
    """Where a keyset page starts: after the row with this (created_at, id) in list order."""

    created_at: datetime.datetime
    id: str


@dataclasses.dataclass
class ExecutionFilter:
    """What a list of executions is narrowed to; `orgs` None: every org."""

    orgs: frozenset[str] | None = None
    phases: list[int] = dataclasses.field(default_factory=list)
    agent_id: str = ""
    session_id: str = ""
    callback_states: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class SessionStart:
    """The first execution of a session: the agent later ones take, and its org."""

    agent_id: str
    org: str


@dataclasses.dataclass(frozen=True)
class TokenUsage:
    """Tokens of model calls (the API's TokenUsage): one call's, or an execution's sum."""

    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0


NO_USAGE = TokenUsage()


@dataclasses.dataclass
class ExecutionRecord:
    id: str
    org: str
    name: str
    labels: dict[str, str]
    agent_id: str
    session_id: str
    message: str
    config: dict[
        str, Any
    ]  # ExecutionConfig in proto JSON form, as stored: for the API's read view.
    # The model and temperature the config sets instead of the agent's (empty, None: the agent's).
    model_name: str
    temperature: float | None
    caller: CallerRef
    runtime_env: dict[str, EnvValue]
    token_present: bool
    token_hash: str
    idempotency_key: str
    phase: int
    output: str
    error_type: str
    error_message: str
    error_retryable: bool
    started_at: datetime.datetime | None
    completed_at: datetime.datetime | None
    callback_state: int
    callback_outcome: int
    callback_attempts: int
    callback_last_error: str
    callback_delivered_at: datetime.datetime | None
    version: int
    created_at: datetime.datetime
    updated_at: datetime.datetime
    messages: list[MessageRecord] = dataclasses.field(default_factory=list)
    created_by: str | None = None  # None: created before credentials had names.
    steps: list[StepRecord] = dataclasses.field(default_factory=list)  # In index order.
    parent_execution_id: str = ""  # The execution that delegated to this one, if any.
    usage: TokenUsage = NO_USAGE


@dataclasses.dataclass(frozen=True, repr=False)
class Delivery:
    """What one callback attempt needs: the execution (without its messages) and the callback
    token current when it was read. Holds the clear token, so its repr names only the execution
    and the token's hash."""

    execution: ExecutionRecord
    token: bytes  # Empty when the caller asked for no callback.
    token_hash: str  # Empty when there is no token.

    def __repr__(self) -> str:
        return f"Delivery({self.execution.id}, token_hash={self.token_hash})"


@dataclasses.dataclass
class CreateResult:
    execution: ExecutionRecord
    created: bool
    # An existing execution got a new callback token (a retried caller).
    token_replaced: bool = False


@dataclasses.dataclass
class CallbackOverview:
    """What the metrics read from the database at scrape time."""

    phases: dict[int, int]  # Executions per phase.
    waiting: int  # Executions whose caller still waits for the callback.
    oldest_waiting: datetime.datetime | None  # Creation time of the oldest of them.
    failed: int  # Executions whose callback could not be delivered.


@dataclasses.dataclass(repr=False)
class WaitingCaller:
    """A caller to heartbeat: its execution has not ended. Holds the clear token, so its repr
    names only the execution and the token's hash."""

    execution_id: str
    token: bytes
    token_hash: str
    caller: CallerRef
    # When the execution was created (its caller's activity had just started); None: unknown.
    created_at: datetime.datetime | None = None

    def __repr__(self) -> str:
        return f"WaitingCaller({self.execution_id}, token_hash={self.token_hash})"


@dataclasses.dataclass(frozen=True)
class UnreadableToken:
    """A waiting caller whose stored token does not decrypt with this service's key (another
    replica's key, a damaged row): it cannot be heartbeated, and must not stop the others."""

    execution_id: str
    token_hash: str


@dataclasses.dataclass
class WaitingCallers:
    """The callers to heartbeat now, and those whose tokens could not be read."""

    callers: list[WaitingCaller]
    unreadable: list[UnreadableToken] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class StepDecision:
    """A person's decision on a tool call that awaits approval (or its timeout), to record."""

    index: int
    state: int  # APPROVAL_APPROVED, APPROVAL_REJECTED or APPROVAL_TIMED_OUT.
    decided_by: str
    reason: str
    # What the model hears instead of the tool's result when the call does not run; empty
    # for an approved call, which runs and records its own result.
    error: str = ""
