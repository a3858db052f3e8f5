"""Scale-out: throughput and callback latency of the whole system with more service replicas and
runner workers against the one Temporal dev server (and the same on SQLite, side by side).

Throughput: a burst of M one-call DSL workflows (64 starts in flight), until the last result;
calls per second, and CPU milliseconds per call of every process.
Callback latency: calls started at 5 per second, each agent answering after a random 0.5 to
2.5 s (`#sleep=`); from the agent's end (the `created_at` of its stored answer, written in the
transaction that records the end) to the caller resuming (the first WorkflowTaskStarted after
the `call_agent` activity completed, in the DSL workflow's history, stamped by Temporal).
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import random
import time
from typing import Any

import grpc
from ai.stigmer.agentic.agentexecution.v1 import query_pb2, query_pb2_grpc, status_pb2
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from benchmarks.latency import CALLS_PER_SECOND, END_AFTER_SECONDS
from benchmarks.stats import percentile
from benchmarks.system import calls, costs, rig, sampling

RESULT_TIMEOUT = 120.0


@dataclasses.dataclass
class ScaleOutResult:
    layout: str
    calls: int
    seconds: float
    failed: int
    cpu_ms_per_call: dict[str, float]  # every process of the rig, by name
    latency_calls: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    costs: costs.CallCosts | None = None

    @property
    def per_second(self) -> float:
        return (self.calls - self.failed) / self.seconds


async def run(
    layout: rig.Layout, work_dir: pathlib.Path, burst: int, latency_calls: int
) -> ScaleOutResult:
    async with rig.running(layout, work_dir) as system:
        await calls.create_agents(system)
        result = await _throughput(system, burst)
        latencies = await _latency(system, latency_calls)
        result.latency_calls = len(latencies)
        result.p50_ms = percentile(latencies, 50)
        result.p99_ms = percentile(latencies, 99)
        return result


async def _results(handles: list[WorkflowHandle[Any, Any]]) -> list[Any]:
    return list(
        await asyncio.wait_for(
            asyncio.gather(*(h.result() for h in handles), return_exceptions=True),
            RESULT_TIMEOUT + len(handles),
        )
    )


async def _throughput(system: rig.SystemRig, burst: int) -> ScaleOutResult:
    pids = system.pids()
    messages = [f"call {i}" for i in range(burst)]
    counted = await costs.before(system)
    cpu_before = sampling.cpu_seconds(pids)
    began = time.monotonic()
    handles = await calls.start(system, calls.PLAIN_AGENT, messages)
    results = await _results(handles)
    elapsed = time.monotonic() - began
    cpu_after = sampling.cpu_seconds(pids)
    call_costs = None
    if not isinstance(results[0], BaseException):
        call_costs = await costs.after(system, counted, burst, handles[0], results[0])
    failed = sum(
        1
        for result, message in zip(results, messages, strict=True)
        if isinstance(result, BaseException) or not calls.came_back(result, message, gated=False)
    )
    cpu = {name: (cpu_after[name] - cpu_before[name]) * 1000 / burst for name in pids}
    return ScaleOutResult(system.layout.label, burst, elapsed, failed, cpu, costs=call_costs)


async def _latency(system: rig.SystemRig, count: int) -> list[float]:
    """Milliseconds from each agent's stored answer to its caller's workflow resuming."""
    low, high = END_AFTER_SECONDS
    messages = [f"latency {i} #sleep={random.uniform(low, high):.3f}" for i in range(count)]
    handles = await calls.start(system, calls.PLAIN_AGENT, messages, CALLS_PER_SECOND)
    results = await _results(handles)
    latencies = []
    async with grpc.aio.insecure_channel(system.service_addresses[0]) as channel:
        stub = query_pb2_grpc.AgentExecutionQueryServiceStub(channel)
        for handle, result in zip(handles, results, strict=True):
            if isinstance(result, BaseException):
                continue
            answered = await _answered_at(stub, str(result["execution_id"]))
            resumed = await _resumed_at(handle)
            latencies.append((resumed - answered) * 1000)
    return latencies


async def _answered_at(
    stub: query_pb2_grpc.AgentExecutionQueryServiceAsyncStub, execution: str
) -> float:
    """The agent's end: when its answer was stored (epoch seconds, the service's clock)."""
    found = await stub.GetAgentExecution(
        query_pb2.GetAgentExecutionRequest(id=execution), timeout=calls.RPC_TIMEOUT
    )
    answers = [
        m
        for m in found.status.messages
        if m.role == status_pb2.MESSAGE_ROLE_ASSISTANT and m.HasField("created_at")
    ]
    return float(answers[-1].created_at.ToNanoseconds()) / 1e9


async def _resumed_at(handle: WorkflowHandle[Any, Any]) -> float:
    """The caller resuming: the first workflow task started after `call_agent` completed."""
    history = await handle.fetch_history()
    completed = False
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed = True
        elif completed and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            return float(event.event_time.ToNanoseconds()) / 1e9
    raise AssertionError(f"{handle.id}: no workflow task after the agent call completed")
