"""The benchmark workflow's and activities' dataclasses, designs and names."""

from __future__ import annotations

import dataclasses
from typing import Any

from backend.workflow_runner.agent_call.models import CallAgentInput

# The designs one benchmark workflow can run, each a way of waiting for an agent's answer.
# The real CallAgentActivity, scheduled without a heartbeat timeout (nothing heartbeats a fake).
HANDSHAKE = "handshake"
# The real CallAgentActivity through `run_agent_call`, as DslWorkflow runs it (the real service).
HANDSHAKE_SERVICE = "handshake-service"
# The design the handshake replaces: create, then poll the status every 2 s while heartbeating.
POLLING = "polling"
# Temporal's floor: an activity that hands over its token and is completed by it, nothing else.
BARE = "bare"

POLL_AGENT_CALL_ACTIVITY = "bench_poll_agent_call"
BARE_ASYNC_ACTIVITY = "bench_bare_async"
POLL_INTERVAL_SECONDS = 2.0


@dataclasses.dataclass
class BenchCallInput:
    """One agent call in one design; `endpoint` is the fake agent side of the polling/bare designs."""

    design: str
    call: CallAgentInput
    endpoint: str = ""


@dataclasses.dataclass
class BenchCallOutput:
    """The call's result and when the workflow resumed with it (`workflow.now()`, epoch seconds)."""

    result: dict[str, Any]
    resumed_at: float


@dataclasses.dataclass
class PollInput:
    call: CallAgentInput
    endpoint: str
