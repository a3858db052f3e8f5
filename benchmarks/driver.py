"""Shared driver helpers: a fresh dev server, starting many workflows."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from backend.common import temporal_dev_server
from backend.workflow_runner.agent_call.models import CallAgentInput
from benchmarks.models import BenchCallInput
from benchmarks.workflows import BenchCallWorkflow

AGENT = "bench-agent"
ORG = "bench"
# Concurrent StartWorkflowExecution calls: enough to keep the server busy, not to flood it.
START_CONCURRENCY = 64


@contextlib.asynccontextmanager
async def temporal() -> AsyncIterator[tuple[temporal_dev_server.DevServer, Client]]:
    """An in-memory dev server of its own, so no run sees another's leftover workflows."""
    server = await temporal_dev_server.start(db_filename=None)
    try:
        yield server, await Client.connect(server.address, runtime=quiet_runtime())
    finally:
        server.stop()


def quiet_runtime() -> Runtime:
    """SDK core logs at ERROR only: late heartbeats of finished executions warn once each."""
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))


def task_queue(name: str) -> str:
    return f"bench-{name}-{uuid.uuid4().hex[:8]}"


async def start_all(
    count: int,
    start: Callable[[int], Awaitable[WorkflowHandle[Any, Any]]],
    per_second: float = 0.0,
) -> list[WorkflowHandle[Any, Any]]:
    """Starts `count` workflows: all at once, or `per_second` of them each second."""
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one(index: int) -> WorkflowHandle[Any, Any]:
        if per_second:
            await asyncio.sleep(index / per_second)
        async with gate:
            return await start(index)

    return list(await asyncio.gather(*(one(index) for index in range(count))))


async def start_bench_calls(
    client: Client,
    queue: str,
    design: str,
    messages: Sequence[str],
    endpoint: str,
    per_second: float = 0.0,
) -> list[WorkflowHandle[Any, Any]]:
    prefix = uuid.uuid4().hex[:8]

    async def start(index: int) -> WorkflowHandle[Any, Any]:
        call = CallAgentInput(agent=AGENT, org=ORG, message=messages[index])
        return await client.start_workflow(
            BenchCallWorkflow.run,
            BenchCallInput(design, call, endpoint),
            id=f"{design}-{prefix}-{index}",
            task_queue=queue,
        )

    return await start_all(len(messages), start, per_second)
