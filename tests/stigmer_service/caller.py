"""A tiny caller workflow, as the runner does it: its activity hands its token to the service."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    command_pb2_grpc,
    spec_pb2,
)
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.worker import Worker
from temporalio.workflow import ActivityCancellationType

from backend.workflow_runner.agent_call import convert


@dataclasses.dataclass
class CallInput:
    endpoint: str
    agent_id: str
    message: str
    timeout_seconds: float = 0.0
    secrets: dict[str, str] = dataclasses.field(default_factory=dict)
    # Runtime env values that are not secret (e.g. what an agent's stdio MCP server is given).
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    idempotency: bool = True
    activity_timeout: float = 60.0
    max_attempts: int = 1
    session_id: str = ""
    # What the first attempt does after creating: "wait" (complete async) or "crash" (raise, so
    # Temporal retries it, after `retry_interval`, with a new token).
    first_attempt: str = "wait"
    retry_interval: float = 0.1
    # As the workflow runner's: the service must heartbeat the activity within it.
    heartbeat_timeout: float = 60.0


# Every token the calling activity handed over, and every execution id it got, in order.
tokens: asyncio.Queue[bytes] = asyncio.Queue()
created: asyncio.Queue[api_pb2.AgentExecution] = asyncio.Queue()
attempts: list[int] = []


@activity.defn
async def call_agent(call: CallInput) -> Any:
    info = activity.info()
    attempts.append(info.attempt)
    spec = spec_pb2.AgentExecutionSpec(
        agent_id=call.agent_id,
        message=call.message,
        session_id=call.session_id,
        callback_token=info.task_token,
        # The runner's own derivations (agent_call/convert.py), so the two cannot drift apart.
        idempotency_key=convert.idempotency_key(info) if call.idempotency else "",
        caller=convert.caller_info(info),
        runtime_env={
            **{k: spec_pb2.ExecutionValue(value=v) for k, v in call.env.items()},
            **{
                k: spec_pb2.ExecutionValue(value=v, is_secret=True) for k, v in call.secrets.items()
            },
        },
    )
    if call.timeout_seconds:
        spec.execution_config.timeout.FromTimedelta(timedelta(seconds=call.timeout_seconds))
    async with grpc.aio.insecure_channel(call.endpoint) as channel:
        stub = command_pb2_grpc.AgentExecutionCommandServiceStub(channel)
        execution = await stub.CreateAgentExecution(
            command_pb2.CreateAgentExecutionRequest(execution=api_pb2.AgentExecution(spec=spec))
        )
    await tokens.put(info.task_token)
    await created.put(execution)
    if info.attempt == 1 and call.first_attempt == "crash":
        raise RuntimeError("the caller's first attempt crashed")
    activity.raise_complete_async()


@workflow.defn
class CallerWorkflow:
    @workflow.run
    async def run(self, call: CallInput) -> Any:
        return await workflow.execute_activity(
            call_agent,
            call,
            start_to_close_timeout=timedelta(seconds=call.activity_timeout),
            heartbeat_timeout=timedelta(seconds=call.heartbeat_timeout),
            retry_policy=RetryPolicy(
                maximum_attempts=call.max_attempts,
                initial_interval=timedelta(seconds=call.retry_interval),
            ),
            # The workflow waits for the service's report_cancellation when it is cancelled.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )


def worker(client: Client, task_queue: str) -> Worker:
    """A worker that runs the caller workflow and its activity on `task_queue`."""
    return Worker(
        client, task_queue=task_queue, workflows=[CallerWorkflow], activities=[call_agent]
    )


@contextlib.asynccontextmanager
async def running(client: Client) -> AsyncIterator[str]:
    """A caller worker on a fresh task queue, with the queues of earlier tests drained; yields
    the task queue to start `CallerWorkflow` on."""
    drain()
    queue = f"caller-{uuid.uuid4()}"
    async with worker(client, queue):
        yield queue


async def start(client: Client, queue: str, call: CallInput) -> WorkflowHandle[Any, Any]:
    """Starts a caller workflow making `call` on the caller worker of `queue`."""
    return await client.start_workflow(
        CallerWorkflow.run, call, id=f"caller-{uuid.uuid4()}", task_queue=queue
    )


def drain() -> None:
    """Forgets what earlier tests left in the queues."""
    for queue in (tokens, created):
        while not queue.empty():
            queue.get_nowait()
    attempts.clear()
