"""`run_agent_call` in a workflow on the real dev server; the fake service completes it by token."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    AsyncActivityCancelledError,
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.worker import Worker

from backend.workflow_runner.agent_call.activities import agent_call_activities
from backend.workflow_runner.agent_call.models import CallAgentInput
from backend.workflow_runner.agent_call.workflow_api import (
    HEARTBEAT_TIMEOUT,
    start_to_close_timeout,
)
from tests.workflow_runner.agent_call.agent_call_workflow import AgentCallWorkflow
from tests.workflow_runner.agent_call.fake_stigmer import Created, FakeStigmer, serve_fake

WAIT = 30


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[tuple[FakeStigmer, str]]:
    async with serve_fake() as served:
        served[0].add_agent("writer", org="acme")
        yield served


@pytest_asyncio.fixture
async def worker(
    temporal_client: Client, task_queue: str, fake: tuple[FakeStigmer, str]
) -> AsyncIterator[Worker]:
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[AgentCallWorkflow],
        activities=agent_call_activities(fake[1]),
    ) as running:
        yield running


async def start(
    client: Client, task_queue: str, call: CallAgentInput
) -> WorkflowHandle[Any, dict[str, Any]]:
    return await client.start_workflow(
        AgentCallWorkflow.run, call, id=f"agent-call-{uuid.uuid4()}", task_queue=task_queue
    )


async def activity_attempts(handle: WorkflowHandle[Any, Any]) -> int:
    events = [event async for event in handle.fetch_history_events()]
    return sum(1 for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)


async def test_the_agent_result_completes_the_call(
    temporal_client: Client, task_queue: str, fake: tuple[FakeStigmer, str], worker: Worker
) -> None:
    service, _ = fake
    call = CallAgentInput(agent="writer", org="acme", message="hi", timeout_seconds=120)
    handle = await start(temporal_client, task_queue, call)
    created: Created = await asyncio.wait_for(service.created.get(), WAIT)
    spec = created.request.execution.spec
    assert spec.idempotency_key == f"{handle.id}/{handle.result_run_id}/1"
    assert spec.caller.workflow_id == handle.id
    assert spec.caller.task_queue == task_queue
    # The service paces its heartbeats of the caller by it (at least every quarter of it);
    # Temporal caps it at the start-to-close timeout, which this short call's is under.
    assert spec.caller.heartbeat_timeout.ToTimedelta() == min(
        HEARTBEAT_TIMEOUT, start_to_close_timeout(call)
    )
    assert start_to_close_timeout(call) < HEARTBEAT_TIMEOUT

    # The activity waits without a slot: the workflow is running, its activity started and open.
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    [pending] = description.raw_description.pending_activities
    assert pending.activity_type.name == "call_agent"

    payload = {
        "execution_id": created.execution_id,
        "output": "the final answer",
        "agent": "writer",
        "agent_id": "agt-writer",
        "session_id": "ses-9",
    }
    await temporal_client.get_async_activity_handle(task_token=created.token).complete(payload)
    # A payload without `steps` (an older service) gives the workflow an empty list.
    assert await asyncio.wait_for(handle.result(), WAIT) == payload | {"steps": []}


async def test_an_agent_failure_fails_the_call_once_without_retry(
    temporal_client: Client, task_queue: str, fake: tuple[FakeStigmer, str], worker: Worker
) -> None:
    service, _ = fake
    handle = await start(
        temporal_client, task_queue, CallAgentInput(agent="writer", org="acme", message="hi")
    )
    created = await asyncio.wait_for(service.created.get(), WAIT)
    # Sent as the service does; even a retryable-labelled agent error type stops by policy.
    await temporal_client.get_async_activity_handle(task_token=created.token).fail(
        ApplicationError("model said no", {"execution_id": created.execution_id}, type="ModelError")
    )
    with pytest.raises(WorkflowFailureError) as raised:
        await asyncio.wait_for(handle.result(), WAIT)
    activity_error = raised.value.cause
    assert isinstance(activity_error, ActivityError)
    assert isinstance(activity_error.cause, ApplicationError)
    assert activity_error.cause.type == "ModelError"
    assert activity_error.cause.details[0] == {"execution_id": created.execution_id}
    assert await activity_attempts(handle) == 1
    assert len(service.creates) == 1


async def test_an_unavailable_service_is_retried_with_the_same_key(
    temporal_client: Client, task_queue: str, fake: tuple[FakeStigmer, str], worker: Worker
) -> None:
    service, _ = fake
    service.create_failures = [grpc.StatusCode.UNAVAILABLE]
    handle = await start(
        temporal_client, task_queue, CallAgentInput(agent="writer", org="acme", message="hi")
    )
    created = await asyncio.wait_for(service.created.get(), WAIT)
    assert created.request.execution.spec.idempotency_key.endswith("/1")
    await temporal_client.get_async_activity_handle(task_token=created.token).complete(
        {"execution_id": created.execution_id, "output": "ok"}
    )
    assert (await asyncio.wait_for(handle.result(), WAIT))["output"] == "ok"
    assert await activity_attempts(handle) == 1  # history records the last attempt only
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED


async def test_cancelling_the_workflow_reaches_the_service_by_heartbeat(
    temporal_client: Client, task_queue: str, fake: tuple[FakeStigmer, str], worker: Worker
) -> None:
    service, _ = fake
    handle = await start(
        temporal_client, task_queue, CallAgentInput(agent="writer", org="acme", message="hi")
    )
    created = await asyncio.wait_for(service.created.get(), WAIT)
    activity_handle = temporal_client.get_async_activity_handle(task_token=created.token)
    await activity_handle.heartbeat()  # Running: no cancellation yet.
    await handle.cancel()

    async def heartbeat_until_cancelled() -> None:
        while True:
            try:
                await activity_handle.heartbeat()
            except AsyncActivityCancelledError:
                return
            await asyncio.sleep(0.2)  # The service's heartbeat period, shortened.

    await asyncio.wait_for(heartbeat_until_cancelled(), WAIT)
    # The workflow waits for the agent's cancellation to be reported.
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    await activity_handle.report_cancellation({"execution_id": created.execution_id})

    with pytest.raises(WorkflowFailureError) as raised:
        await asyncio.wait_for(handle.result(), WAIT)
    assert isinstance(raised.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    # The runner cancelled the execution itself as well, at once (test_prompt_cancel.py).
    assert await asyncio.wait_for(service.cancelled.get(), WAIT) == created.execution_id
