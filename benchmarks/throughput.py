"""Measurement 3: complete agent calls per second end to end, versus the bare floor."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import uuid
from typing import Any

from temporalio.client import WorkflowHandle

from backend.workflow_runner.agent_call.models import CallAgentInput
from backend.workflow_runner.models import DslRunInput
from benchmarks import driver, fake_agent
from benchmarks.models import BARE, BenchCallInput
from benchmarks.stack import Rig
from benchmarks.system import sampling
from benchmarks.workflows import BenchCallWorkflow

ONE_CALL: dict[str, Any] = {
    "document": {"dsl": "1.0.0", "namespace": "bench", "name": "one-call", "version": "1.0.0"},
    "do": [
        {
            "ask": {
                "call": "agent",
                "with": {
                    "agent": driver.AGENT,
                    "org": driver.ORG,
                    "message": '${ "call " + (.n|tostring) }',
                    "config": {"model": "offline/echo", "timeout": "PT2M"},
                },
            }
        }
    ],
}
DSL = "handshake (DSL → service)"


# The three processes whose CPU a call costs: where the time goes, per call.
PROCESSES = ("temporal", "worker", "service+driver")


@dataclasses.dataclass
class ThroughputResult:
    design: str
    calls: int
    seconds: float
    failed: int = 0  # calls whose workflow failed (counted out of the rate)
    # CPU milliseconds per call of each process over the run (user + system).
    cpu_ms_per_call: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return (self.calls - self.failed) / self.seconds


def _cpu_seconds(rig: Rig) -> dict[str, float]:
    pids = [rig.server.process.pid, rig.worker.pid if rig.worker else 0, os.getpid()]
    return sampling.cpu_seconds(dict(zip(PROCESSES, pids, strict=True)))


async def _timed(
    rig: Rig, design: str, calls: int, start: Any, check: Any, timeout: float
) -> ThroughputResult:
    cpu_before = _cpu_seconds(rig)
    began = time.monotonic()
    handles: list[WorkflowHandle[Any, Any]] = await driver.start_all(calls, start)
    results = await asyncio.wait_for(
        asyncio.gather(*(h.result() for h in handles), return_exceptions=True), timeout
    )
    elapsed = time.monotonic() - began
    cpu_after = _cpu_seconds(rig)
    failed = 0
    for index, result in enumerate(results):
        if isinstance(result, BaseException):
            # A saturated system fails calls (e.g. a caller's heartbeat timeout): counted, shown.
            failed += 1
        else:
            check(index, result)
    cpu = {name: (cpu_after[name] - cpu_before[name]) * 1000 / calls for name in PROCESSES}
    return ThroughputResult(design, calls, elapsed, failed, cpu)


async def run_bare(rig: Rig, calls: int) -> ThroughputResult:
    """Each activity hands its token over; the fake side completes it at once."""
    tasks: set[asyncio.Task[None]] = set()

    async def complete(execution: fake_agent.FakeExecution) -> None:
        rig.fake.finish(execution)
        handle = rig.client.get_async_activity_handle(task_token=execution.token)
        await handle.complete({"execution_id": execution.execution_id, "output": "done"})

    def on_create(execution: fake_agent.FakeExecution) -> None:
        task = asyncio.ensure_future(complete(execution))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    rig.fake.on_create = on_create
    prefix = uuid.uuid4().hex[:8]

    async def start(index: int) -> WorkflowHandle[Any, Any]:
        call = CallAgentInput(agent=driver.AGENT, org=driver.ORG, message=f"call {index}")
        return await rig.client.start_workflow(
            BenchCallWorkflow.run,
            BenchCallInput(BARE, call, rig.fake_endpoint),
            id=f"tput-bare-{prefix}-{index}",
            task_queue=rig.queue,
        )

    def check(index: int, result: Any) -> None:
        assert result.result["output"] == "done", result

    try:
        return await _timed(rig, f"{BARE} (floor)", calls, start, check, 60 + calls)
    finally:
        rig.fake.on_create = None


async def run_dsl(rig: Rig, calls: int) -> ThroughputResult:
    """DslWorkflow → call_agent → CreateAgentExecution → execution workflow → callback."""
    prefix = uuid.uuid4().hex[:8]

    async def start(index: int) -> WorkflowHandle[Any, Any]:
        return await rig.client.start_workflow(
            "DslWorkflow",
            DslRunInput(ONE_CALL, {"n": index}),
            id=f"tput-dsl-{prefix}-{index}",
            task_queue=rig.queue,
        )

    def check(index: int, result: Any) -> None:
        # The offline model answers "<agent>: <message>": proof that the agent really ran.
        assert f"call {index}" in str(result), result

    return await _timed(rig, DSL, calls, start, check, 60 + calls)
