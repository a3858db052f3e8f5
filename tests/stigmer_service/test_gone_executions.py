"""An execution or its workflow that goes away (issue 14, findings 8 and 16): a delete while a
callback is owed is refused, a workflow whose row is gone ends cleanly, a start whose answer
was lost keeps its execution, and an execution whose workflow was terminated is ended and its
caller told instead of being heartbeated for ever."""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from typing import Any

import grpc
import pytest
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    query_pb2,
    spec_pb2,
    status_pb2,
)
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from backend.common import contract
from backend.stigmer_service import app
from backend.stigmer_service.execution.models import PHASE_DELETED, ExecutionWorkflowInput
from backend.stigmer_service.execution.policies import execution_policy
from backend.stigmer_service.execution.workflow_ids import workflow_id
from backend.stigmer_service.execution.workflows import AgentExecutionWorkflow
from tests.stigmer_service import caller
from tests.support.eventually import eventually
from tests.support.service import Stubs, fast_settings, open_stubs

WAIT = 30


async def stored(stubs: Stubs, execution_id: str) -> api_pb2.AgentExecution:
    return await stubs.queries.GetAgentExecution(
        query_pb2.GetAgentExecutionRequest(id=execution_id)
    )


async def test_an_ended_execution_that_owes_its_callback_cannot_be_deleted(
    temporal_client: Client, tmp_path: pathlib.Path, caller_queue: str
) -> None:
    """The delete used to succeed: the callback was lost, and the workflow's `finish` retried
    for ever. Now it is refused until the callback is delivered, and then allowed."""
    settings = fast_settings(tmp_path, test_callback_delay=4.0)
    async with app.running(settings, client=temporal_client) as service:
        stubs = await open_stubs(service)
        try:
            agent = await stubs.agent("echo")
            handle = await caller.start(
                temporal_client,
                caller_queue,
                caller.CallInput(stubs.endpoint, agent.metadata.id, "#reply=kept"),
            )
            execution_id = (await asyncio.wait_for(caller.created.get(), WAIT)).metadata.id

            async def ended_owing() -> None:
                execution = await stored(stubs, execution_id)
                assert execution.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
                assert execution.status.callback.state == status_pb2.CALLBACK_STATE_WAITING

            await eventually(ended_owing, timeout=WAIT, every=0.05)
            delete = command_pb2.DeleteAgentExecutionRequest(id=execution_id)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stubs.executions.DeleteAgentExecution(delete)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "callback" in (refused.value.details() or "")
            # The caller gets its answer, once, and the execution can go then.
            assert (await asyncio.wait_for(handle.result(), WAIT))["output"] == "kept"

            async def delivered() -> None:
                execution = await stored(stubs, execution_id)
                assert execution.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED

            await eventually(delivered, timeout=WAIT, every=0.05)
            await stubs.executions.DeleteAgentExecution(delete)
            with pytest.raises(grpc.aio.AioRpcError) as gone:
                await stored(stubs, execution_id)
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            await stubs.channel.close()


async def test_the_workflow_of_a_deleted_execution_ends_without_retrying_for_ever(
    stigmer: Stubs, temporal_client: Client
) -> None:
    """Its row is gone (deleted, or a start whose RPC failed): `run_agent`, `finish` and the
    delivery used to fail with NotFound, `finish` retried without end."""
    settings = stigmer.service.settings
    execution_id = f"aex-deleted-{uuid.uuid4().hex[:8]}"
    handle = await temporal_client.start_workflow(
        AgentExecutionWorkflow.run,
        ExecutionWorkflowInput(execution_id, execution_policy(settings)),
        id=workflow_id(execution_id),
        task_queue=settings.task_queue,
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result.phase == PHASE_DELETED


async def test_a_start_whose_answer_was_lost_keeps_its_execution(
    stigmer: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start RPC reached Temporal but its answer timed out: the execution used to be
    deleted (UNAVAILABLE to the caller) while its workflow ran; now the workflow is looked up
    and the execution stays, and runs to its end."""
    client = stigmer.service.client
    start = client.start_workflow

    async def answer_lost(*args: Any, **kwargs: Any) -> Any:
        started = await start(*args, **kwargs)
        if str(kwargs.get("id", "")).startswith("agent-execution-"):
            raise RPCError("deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")
        return started

    monkeypatch.setattr(client, "start_workflow", answer_lost)
    agent = await stigmer.agent("echo")
    created = await stigmer.executions.CreateAgentExecution(
        command_pb2.CreateAgentExecutionRequest(
            execution=api_pb2.AgentExecution(
                spec=spec_pb2.AgentExecutionSpec(agent_id=agent.metadata.id, message="#reply=ran")
            )
        )
    )

    async def completed() -> None:
        execution = await stored(stigmer, created.metadata.id)
        assert execution.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
        assert execution.status.output == "ran"

    await eventually(completed, timeout=WAIT, every=0.05)


async def test_a_create_whose_caller_gave_up_before_the_start_still_runs(
    stigmer: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's deadline cancelled the create between its row and its workflow's start: the
    row used to stay without a workflow, the caller's retry (same key) found it and waited
    until the sweeper ended it as lost (seen at 1,000 calls in flight). Now the start runs to
    its end regardless, and the retry gets the running execution."""
    client = stigmer.service.client
    start = client.start_workflow

    async def slow_start(*args: Any, **kwargs: Any) -> Any:
        if str(kwargs.get("id", "")).startswith("agent-execution-"):
            await asyncio.sleep(1.0)  # Past the caller's deadline below.
        return await start(*args, **kwargs)

    monkeypatch.setattr(client, "start_workflow", slow_start)
    agent = await stigmer.agent("echo")
    request = command_pb2.CreateAgentExecutionRequest(
        execution=api_pb2.AgentExecution(
            spec=spec_pb2.AgentExecutionSpec(
                agent_id=agent.metadata.id, message="#reply=ran", idempotency_key="k-deadline"
            )
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as gave_up:
        await stigmer.executions.CreateAgentExecution(request, timeout=0.3)
    assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    retried = await stigmer.executions.CreateAgentExecution(request)

    async def completed() -> None:
        execution = await stored(stigmer, retried.metadata.id)
        assert execution.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
        assert execution.status.output == "ran"

    await eventually(completed, timeout=WAIT, every=0.05)


async def test_a_caller_whose_execution_workflow_was_terminated_is_told(
    temporal_client: Client, tmp_path: pathlib.Path, caller_queue: str
) -> None:
    """The sweeper used to heartbeat such a caller for as long as it would wait: nothing would
    ever end its execution. Now the execution is ended CANCELLED and the caller gets a
    non-retryable ExecutionCancelled."""
    settings = fast_settings(tmp_path, execution_check_interval=0.5)
    async with app.running(settings, client=temporal_client) as service:
        stubs = await open_stubs(service)
        try:
            agent = await stubs.agent("echo")
            handle = await caller.start(
                temporal_client,
                caller_queue,
                caller.CallInput(
                    stubs.endpoint, agent.metadata.id, "#sleep=60", heartbeat_timeout=3
                ),
            )
            execution_id = (await asyncio.wait_for(caller.created.get(), WAIT)).metadata.id

            async def running() -> None:
                execution = await stored(stubs, execution_id)
                assert execution.status.phase == status_pb2.EXECUTION_PHASE_RUNNING

            await eventually(running, timeout=WAIT, every=0.05)
            await temporal_client.get_workflow_handle(workflow_id(execution_id)).terminate(
                "an operator's mistake"
            )
            with pytest.raises(WorkflowFailureError) as failure:
                await asyncio.wait_for(handle.result(), WAIT)
            cause = failure.value.cause
            assert isinstance(cause, ActivityError)
            assert isinstance(cause.cause, ApplicationError)
            assert cause.cause.type == contract.EXECUTION_CANCELLED
            assert cause.cause.non_retryable
            execution = await stored(stubs, execution_id)
            assert execution.status.phase == status_pb2.EXECUTION_PHASE_CANCELLED
            assert execution.status.error.type == contract.EXECUTION_CANCELLED
            assert "TERMINATED" in execution.status.error.message

            async def delivered() -> None:
                execution = await stored(stubs, execution_id)
                assert execution.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED

            await eventually(delivered, timeout=WAIT, every=0.05)
        finally:
            await stubs.channel.close()
