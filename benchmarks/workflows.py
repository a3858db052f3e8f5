"""`BenchCallWorkflow`: one agent call in a given design, stamped with when the workflow resumed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from backend.workflow_runner.agent_call.models import CALL_AGENT_ACTIVITY
    from backend.workflow_runner.agent_call.workflow_api import run_agent_call
    from benchmarks.models import (
        BARE,
        BARE_ASYNC_ACTIVITY,
        HANDSHAKE,
        HANDSHAKE_SERVICE,
        POLL_AGENT_CALL_ACTIVITY,
        POLLING,
        BenchCallInput,
        BenchCallOutput,
        PollInput,
    )

# Long enough for the biggest run; the benchmark discards its dev server afterwards.
WAIT_TIMEOUT = timedelta(hours=2)
# The polling activity heartbeats on every poll (2 s); as the real caller's heartbeat timeout.
POLL_HEARTBEAT_TIMEOUT = timedelta(seconds=60)
NO_RETRY = RetryPolicy(maximum_attempts=1)


@workflow.defn
class BenchCallWorkflow:
    @workflow.run
    async def run(self, request: BenchCallInput) -> BenchCallOutput:
        result: Any
        if request.design == HANDSHAKE_SERVICE:
            result = await run_agent_call(request.call)
        elif request.design == HANDSHAKE:
            result = await workflow.execute_activity(
                CALL_AGENT_ACTIVITY,
                request.call,
                result_type=dict,
                start_to_close_timeout=WAIT_TIMEOUT,
                retry_policy=NO_RETRY,
            )
        elif request.design == POLLING:
            result = await workflow.execute_activity(
                POLL_AGENT_CALL_ACTIVITY,
                PollInput(request.call, request.endpoint),
                result_type=dict,
                start_to_close_timeout=WAIT_TIMEOUT,
                heartbeat_timeout=POLL_HEARTBEAT_TIMEOUT,
                retry_policy=NO_RETRY,
            )
        elif request.design == BARE:
            result = await workflow.execute_activity(
                BARE_ASYNC_ACTIVITY,
                PollInput(request.call, request.endpoint),
                result_type=dict,
                start_to_close_timeout=WAIT_TIMEOUT,
                retry_policy=NO_RETRY,
            )
        else:
            raise ValueError(f"unknown design {request.design!r}")
        return BenchCallOutput(dict(result), workflow.now().timestamp())


# The baseline of the event benchmark: a bare Temporal signal, carrying the same CloudEvent.
BENCH_SIGNAL = "bench_signal"


@workflow.defn(name="BenchSignalWorkflow")
class BenchSignalWorkflow:
    """Waits for `expected` signals and does nothing else with them."""

    def __init__(self) -> None:
        self.received = 0

    @workflow.run
    async def run(self, expected: int) -> int:
        await workflow.wait_condition(lambda: self.received >= expected)
        return self.received

    @workflow.signal(name=BENCH_SIGNAL)
    def take(self, event: dict[str, Any]) -> None:
        self.received += 1
