"""End to end: a workflow's `call: agent` against the real Stigmer service, offline model provider."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    query_pb2,
    query_pb2_grpc,
    status_pb2,
)
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.worker import Worker

from backend.stigmer_service import app
from backend.workflow_runner.agent_call.activities import agent_call_activities
from backend.workflow_runner.agent_call.models import CallAgentInput, SecretScope
from tests.e2e.conftest import AGENT
from tests.support.agents import ORG
from tests.workflow_runner.agent_call.agent_call_workflow import AgentCallWorkflow

WAIT = 45
SECRET_VALUE = "sk-e2e-secret-value-0137"


@pytest_asyncio.fixture
async def runner(
    temporal_client: Client, task_queue: str, service: app.Service
) -> AsyncIterator[Worker]:
    """The workflow runner's side: the caller workflow and the agent-call activities."""
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[AgentCallWorkflow],
        activities=agent_call_activities(service.address),
        max_concurrent_activities=2,
    ) as worker:
        yield worker


async def start(
    client: Client, task_queue: str, message: str, **fields: Any
) -> WorkflowHandle[Any, dict[str, Any]]:
    call = CallAgentInput(
        agent=fields.pop("agent", AGENT),
        org=ORG,
        message=message,
        model="offline/echo",
        **fields,
    )
    return await client.start_workflow(
        AgentCallWorkflow.run, call, id=f"e2e-{uuid.uuid4()}", task_queue=task_queue
    )


async def get_execution(service: app.Service, execution_id: str) -> api_pb2.AgentExecution:
    async with grpc.aio.insecure_channel(service.address) as channel:
        return await query_pb2_grpc.AgentExecutionQueryServiceStub(channel).GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=execution_id), timeout=10
        )


async def activity_attempts(handle: WorkflowHandle[Any, Any]) -> int:
    events = [event async for event in handle.fetch_history_events()]
    return sum(1 for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)


async def test_the_agents_final_answer_completes_the_workflow(
    temporal_client: Client, task_queue: str, service: app.Service, runner: Worker
) -> None:
    handle = await start(temporal_client, task_queue, "Say it. #reply=hello from the agent")
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"] == "hello from the agent"
    assert result["execution_id"]

    execution = await get_execution(service, result["execution_id"])
    assert execution.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    assert execution.status.output == "hello from the agent"
    assert execution.spec.idempotency_key == f"{handle.id}/{handle.result_run_id}/1"
    assert execution.spec.caller.workflow_id == handle.id
    # The token is stored for the callback but never read back.
    assert execution.spec.callback_token == b""
    assert execution.status.callback.token_present
    assert execution.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED


async def test_secrets_reach_the_agent_but_no_read_and_no_history(
    temporal_client: Client,
    task_queue: str,
    service: app.Service,
    runner: Worker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STIGMER_SECRET_API_KEY", SECRET_VALUE)
    # As a workflow declaring `use.secrets: [api_key]` hands it over: sealed for its run.
    scope = SecretScope("7" * 32, ("api_key",))
    placeholder = scope.placeholders()["api_key"]
    handle = await start(
        temporal_client,
        task_queue,
        f"use {placeholder} please",
        env={"TOKEN": placeholder, "REGION": "eu"},
        secret_seal=scope.seal,
        secret_names=list(scope.names),
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    # The offline model echoes the message with the secret resolved, then masked.
    assert result["output"] == f"{AGENT}: use *** please"
    execution = await get_execution(service, result["execution_id"])
    assert execution.spec.runtime_env["TOKEN"].value == "***"
    assert execution.spec.runtime_env["REGION"].value == "eu"
    history = [event async for event in handle.fetch_history_events()]
    assert SECRET_VALUE not in "".join(str(event) for event in history)
    assert SECRET_VALUE not in str(execution)


async def test_an_agent_failure_fails_the_call_without_retry(
    temporal_client: Client, task_queue: str, service: app.Service, runner: Worker
) -> None:
    handle = await start(temporal_client, task_queue, "#fail=ToolExploded")
    with pytest.raises(WorkflowFailureError) as raised:
        await asyncio.wait_for(handle.result(), WAIT)
    activity_error = raised.value.cause
    assert isinstance(activity_error, ActivityError)
    assert isinstance(activity_error.cause, ApplicationError)
    assert activity_error.cause.type == "ToolExploded"
    assert activity_error.cause.non_retryable
    assert await activity_attempts(handle) == 1


async def test_an_unknown_agent_fails_the_call_naming_it(
    temporal_client: Client, task_queue: str, service: app.Service, runner: Worker
) -> None:
    handle = await start(temporal_client, task_queue, "hi", agent="no-such-agent")
    with pytest.raises(WorkflowFailureError) as raised:
        await asyncio.wait_for(handle.result(), WAIT)
    cause = raised.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "AgentNotFound"
    assert "no-such-agent" in str(cause.cause)
    assert await activity_attempts(handle) == 1


async def test_cancelling_the_workflow_cancels_the_running_agent(
    temporal_client: Client, task_queue: str, service: app.Service, runner: Worker
) -> None:
    handle = await start(temporal_client, task_queue, "#sleep=60 then answer")

    async def running_execution() -> str:
        while True:
            description = await handle.describe()
            if description.raw_description.pending_activities:
                async with grpc.aio.insecure_channel(service.address) as channel:
                    listed = await query_pb2_grpc.AgentExecutionQueryServiceStub(
                        channel
                    ).ListAgentExecutions(
                        query_pb2.ListAgentExecutionsRequest(
                            phases=[status_pb2.EXECUTION_PHASE_RUNNING]
                        ),
                        timeout=10,
                    )
                for execution in listed.executions:
                    if execution.spec.caller.workflow_id == handle.id:
                        return execution.metadata.id
            await asyncio.sleep(0.2)

    execution_id = await asyncio.wait_for(running_execution(), WAIT)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as raised:
        await asyncio.wait_for(handle.result(), WAIT)
    assert isinstance(raised.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    execution = await get_execution(service, execution_id)
    assert execution.status.phase == status_pb2.EXECUTION_PHASE_CANCELLED
