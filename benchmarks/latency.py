"""Measurement 2: from the agent's end to the caller's workflow resuming, per design."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

import grpc
from ai.stigmer.agentic.agentexecution.v1 import query_pb2, query_pb2_grpc, status_pb2

from benchmarks import driver, fake_agent
from benchmarks.models import BARE, HANDSHAKE_SERVICE, POLLING, BenchCallOutput
from benchmarks.stack import Rig
from benchmarks.stats import percentile

# Agents end at a random moment in this window after their call was created, so that ends do
# not line up with the polling design's 2 s poll.
END_AFTER_SECONDS = (0.5, 2.5)
# Calls start at this steady rate: latency at a load every design sustains (well under the
# handshake's throughput, see measurement 3), not the queueing of a burst.
CALLS_PER_SECOND = 5.0


@dataclasses.dataclass
class LatencyResult:
    design: str
    calls: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


def _summarize(design: str, latencies: list[float]) -> LatencyResult:
    ms = [value * 1000 for value in latencies]
    return LatencyResult(
        design, len(ms), percentile(ms, 50), percentile(ms, 95), percentile(ms, 99)
    )


async def _results(handles: list[Any], timeout: float) -> list[BenchCallOutput]:
    return list(await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout))


async def run_fake_side(
    rig: Rig, design: str, calls: int, rate: float = CALLS_PER_SECOND
) -> LatencyResult:
    """The floor (`bare`: the token is completed) or polling (the status flips), same schedule."""
    loop = asyncio.get_running_loop()
    ends: dict[str, float] = {}
    pending: set[asyncio.Task[None]] = set()

    async def complete(execution: fake_agent.FakeExecution) -> None:
        rig.fake.finish(execution)
        assert execution.finished_at is not None
        ends[execution.execution_id] = execution.finished_at
        handle = rig.client.get_async_activity_handle(task_token=execution.token)
        await handle.complete({"execution_id": execution.execution_id, "output": "done"})

    def end(execution: fake_agent.FakeExecution) -> None:
        if design == BARE:
            task = asyncio.ensure_future(complete(execution))
            pending.add(task)
            task.add_done_callback(pending.discard)
        else:
            rig.fake.finish(execution)
            assert execution.finished_at is not None
            ends[execution.execution_id] = execution.finished_at

    def schedule(execution: fake_agent.FakeExecution) -> None:
        loop.call_later(random.uniform(*END_AFTER_SECONDS), end, execution)

    rig.fake.on_create = schedule
    try:
        handles = await driver.start_bench_calls(
            rig.client,
            rig.queue,
            design,
            [f"latency {i}" for i in range(calls)],
            rig.fake_endpoint,
            rate,
        )
        outputs = await _results(handles, 60 + calls * 0.5)
    finally:
        rig.fake.on_create = None
    return _summarize(design, [o.resumed_at - ends[str(o.result["execution_id"])] for o in outputs])


async def run_service(rig: Rig, calls: int, rate: float = CALLS_PER_SECOND) -> LatencyResult:
    """The real handshake: the service's agent ends (its answer is stored), then calls back."""
    low, high = END_AFTER_SECONDS
    messages = [f"latency {i} #sleep={random.uniform(low, high):.3f}" for i in range(calls)]
    handles = await driver.start_bench_calls(
        rig.client, rig.queue, HANDSHAKE_SERVICE, messages, rig.fake_endpoint, rate
    )
    outputs = await _results(handles, 60 + calls * 0.5)
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(rig.service_address) as channel:
        stub = query_pb2_grpc.AgentExecutionQueryServiceStub(channel)
        for output in outputs:
            execution = await stub.GetAgentExecution(
                query_pb2.GetAgentExecutionRequest(id=str(output.result["execution_id"])),
                timeout=10,
            )
            answers = [
                m
                for m in execution.status.messages
                if m.role == status_pb2.MESSAGE_ROLE_ASSISTANT and m.HasField("created_at")
            ]
            assert answers, execution.status
            # The agent's end: its answer stored (in the transaction that records the end).
            answered = answers[-1].created_at.ToNanoseconds() / 1e9
            latencies.append(output.resumed_at - answered)
    return _summarize(HANDSHAKE_SERVICE, latencies)


async def run(rig: Rig, calls: int) -> list[LatencyResult]:
    return [
        await run_fake_side(rig, BARE, calls),
        await run_service(rig, calls),
        await run_fake_side(rig, POLLING, calls),
    ]
