"""What one agent call costs besides CPU, read around a throughput burst: Temporal frontend RPCs
(by operation, from the dev server's counter), workflow history (events and bytes of the caller's
DSL workflow and of the execution workflow, from one sample call) and database growth. These are
the inputs of the cost model in docs/scaling.md."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from typing import Any

from temporalio.client import WorkflowHandle

from benchmarks.system import rig, sampling
from benchmarks.system.database import StoreProbe

START = "StartWorkflowExecution"
COMPLETE = "RespondActivityTaskCompleted"
# The execution workflow's id (backend/stigmer_service/execution/workflow_ids.py).
EXECUTION_WORKFLOW_ID = "agent-execution-{}"


@dataclasses.dataclass
class CallCosts:
    rpcs: dict[str, float]  # Temporal frontend requests per call, by operation
    history_events: int  # the caller's and the execution's workflows, one call
    history_bytes: int
    db_bytes: float  # database growth per call over the burst

    @property
    def rpcs_total(self) -> float:
        return sum(self.rpcs.values())


@dataclasses.dataclass
class Before:
    requests: Counter[str]
    db_bytes: int


async def before(system: rig.SystemRig) -> Before:
    probe = StoreProbe(system.db_url)
    try:
        size = await probe.size_bytes()
    finally:
        await probe.close()
    return Before(await sampling.temporal_requests(system.metrics_url), size)


async def after(
    system: rig.SystemRig, start: Before, calls: int, sample: WorkflowHandle[Any, Any], result: Any
) -> CallCosts:
    requests = await _settled_requests(system.metrics_url)
    probe = StoreProbe(system.db_url)
    try:
        size = await probe.size_bytes()
    finally:
        await probe.close()
    rpcs = {op: (requests[op] - start.requests[op]) / calls for op in requests}
    events, size_of_history = await _history(sample)
    execution = system.client.get_workflow_handle(
        EXECUTION_WORKFLOW_ID.format(result["execution_id"])
    )
    more_events, more_bytes = await _history(execution)
    return CallCosts(
        {op: n for op, n in rpcs.items() if n > 0},
        events + more_events,
        size_of_history + more_bytes,
        (size - start.db_bytes) / calls,
    )


async def _settled_requests(metrics_url: str) -> Counter[str]:
    """The counter once the burst's requests are all in it: the dev server reports its metrics
    a few seconds late, so it is read until the starts stop growing (at most 20 s)."""
    last = await sampling.temporal_requests(metrics_url)
    for _ in range(20):
        await asyncio.sleep(1.0)
        now = await sampling.temporal_requests(metrics_url)
        if now[START] == last[START] and now[COMPLETE] == last[COMPLETE]:
            return now
        last = now
    return last


async def _history(handle: WorkflowHandle[Any, Any]) -> tuple[int, int]:
    history = await handle.fetch_history()
    return len(history.events), sum(event.ByteSize() for event in history.events)
