"""Every end of an execution reaches the waiting caller's activity, exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, command_pb2, query_pb2, status_pb2
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.worker import Worker

from tests.stigmer_service import caller
from tests.stigmer_service.conftest import Stubs

WAIT = 30


@pytest_asyncio.fixture
async def caller_queue(temporal_client: Client) -> AsyncIterator[str]:
    caller.drain()
    queue = f"caller-{uuid.uuid4()}"
    async with Worker(
        temporal_client, task_queue=queue, workflows=[caller.CallerWorkflow], activities=[caller.call_agent]
    ):
        yield queue


async def start_call(
    client: Client, queue: str, call: caller.CallInput
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        caller.CallerWorkflow.run, call, id=f"caller-{uuid.uuid4()}", task_queue=queue
    )


async def next_execution() -> api_pb2.AgentExecution:
    return await asyncio.wait_for(caller.created.get(), WAIT)


async def wait_for(stigmer: Stubs, execution_id: str, predicate: Any) -> api_pb2.AgentExecution:
    """Polls the execution until `predicate` holds (bounded)."""
    async def poll() -> api_pb2.AgentExecution:
        while True:
            execution = await stigmer.queries.GetAgentExecution(
                query_pb2.GetAgentExecutionRequest(id=execution_id)
            )
            if predicate(execution):
                return execution
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), WAIT)


def callback_settled(execution: api_pb2.AgentExecution) -> bool:
    return execution.status.callback.state not in (
        status_pb2.CALLBACK_STATE_WAITING,
        status_pb2.CALLBACK_STATE_UNSPECIFIED,
    )


async def test_completed_sends_the_final_output(
    stigmer: Stubs, temporal_client: Client, caller_queue: str
) -> None:
    agent = await stigmer.agent("echo")
    handle = await start_call(
        temporal_client,
        caller_queue,
        caller.CallInput(stigmer.endpoint, agent.metadata.id, "hello #reply=the final answer"),
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    execution = await next_execution()
    assert result == {
        "execution_id": execution.metadata.id,
        "output": "the final answer",
        "agent": "echo",
        "agent_id": agent.metadata.id,
        "session_id": execution.spec.session_id,
    }
    stored = await wait_for(stigmer, execution.metadata.id, callback_settled)
    assert stored.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    assert stored.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
    assert stored.status.callback.outcome == status_pb2.CALLBACK_OUTCOME_COMPLETED
    assert stored.status.callback.attempts == 1
    assert [m.role for m in stored.status.messages] == [
        status_pb2.MESSAGE_ROLE_USER,
        status_pb2.MESSAGE_ROLE_ASSISTANT,
    ]


async def test_failed_is_non_retryable_with_the_error_type(
    stigmer: Stubs, temporal_client: Client, caller_queue: str
) -> None:
    agent = await stigmer.agent("echo")
    handle = await start_call(
        temporal_client,
        caller_queue,
        caller.CallInput(stigmer.endpoint, agent.metadata.id, "#fail=Boom", max_attempts=5),
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), WAIT)
    activity_error = failure.value.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "Boom"
    assert cause.non_retryable
    execution = await next_execution()
    assert cause.details == ({"execution_id": execution.metadata.id},)
    assert caller.attempts == [1]  # The caller's activity ran exactly once.
    stored = await wait_for(stigmer, execution.metadata.id, callback_settled)
    assert stored.status.phase == status_pb2.EXECUTION_PHASE_FAILED
    assert stored.status.error.type == "Boom"


async def test_cancel_rpc_reports_cancellation(
    stigmer: Stubs, temporal_client: Client, caller_queue: str
) -> None:
    agent = await stigmer.agent("echo")
    handle = await start_call(
        temporal_client, caller_queue, caller.CallInput(stigmer.endpoint, agent.metadata.id, "#sleep=30", max_attempts=3)
    )
    execution = await next_execution()
    await wait_for(stigmer, execution.metadata.id, lambda e: e.status.phase == status_pb2.EXECUTION_PHASE_RUNNING)
    cancelled = await stigmer.executions.CancelAgentExecution(
        command_pb2.CancelAgentExecutionRequest(id=execution.metadata.id, reason="test")
    )
    assert cancelled.status.phase == status_pb2.EXECUTION_PHASE_CANCELLED
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), WAIT)
    assert isinstance(failure.value.cause, ActivityError)
    # Temporal takes report_cancellation only from a caller that asked to cancel; a cancel from
    # the service's side arrives as a non-retryable ExecutionCancelled error.
    cause = failure.value.cause.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable) == ("ExecutionCancelled", True)
    assert caller.attempts == [1]
    stored = await wait_for(stigmer, execution.metadata.id, callback_settled)
    assert stored.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
    assert stored.status.callback.outcome == status_pb2.CALLBACK_OUTCOME_CANCELLED
