"""Plain records the store reads and writes; protobuf stays at the gRPC edge."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any


@dataclasses.dataclass
class AgentRecord:
    id: str
    org: str
    slug: str
    name: str
    labels: dict[str, str]
    annotations: dict[str, str]
    spec: dict[str, Any]  # AgentSpec in proto JSON form.
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
    config: dict[str, Any]
    caller: dict[str, Any]
    runtime_env: dict[str, tuple[str, bool]]  # Clear values; the store encrypts secrets.
    token: bytes
    idempotency_key: str


@dataclasses.dataclass
class ExecutionRecord:
    id: str
    org: str
    name: str
    labels: dict[str, str]
    agent_id: str
    session_id: str
    message: str
    config: dict[str, Any]
    caller: dict[str, Any]
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
    caller: dict[str, Any]

    def __repr__(self) -> str:
        return f"WaitingCaller({self.execution_id}, token_hash={self.token_hash})"
