"""Every end of an execution reaches the waiting caller's activity, exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
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
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.service import RPCError, RPCStatusCode

from backend.common import temporal_dev_server
from backend.stigmer_service import app
from backend.stigmer_service.execution import callback, callers, worker
from backend.stigmer_service.execution.models import CallbackWorkflowInput
from backend.stigmer_service.execution.policies import execution_policy
from backend.stigmer_service.execution.workflows import CallbackWorkflow
from tests.stigmer_service import caller
from tests.support.eventually import eventually
from tests.support.service import Stubs, fast_settings, open_stubs

WAIT = 30


async def next_execution() -> api_pb2.AgentExecution:
    return await asyncio.wait_for(caller.created.get(), WAIT)


async def wait_for(stigmer: Stubs, execution_id: str, predicate: Any) -> api_pb2.AgentExecution:
    """Polls the execution until `predicate` holds (bounded)."""

    async def holds() -> api_pb2.AgentExecution:
        execution = await stigmer.queries.GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=execution_id)
        )
        assert predicate(execution), execution.status
        return execution

    return await eventually(holds, timeout=WAIT, every=0.05)


def callback_settled(execution: api_pb2.AgentExecution) -> bool:
    return execution.status.callback.state not in (
        status_pb2.CALLBACK_STATE_WAITING,
        status_pb2.CALLBACK_STATE_UNSPECIFIED,
    )


async def test_completed_sends_the_final_output(
    stigmer: Stubs, temporal_client: Client, caller_queue: str
) -> None:
    agent = await stigmer.agent("echo")
    handle = await caller.start(
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
        "steps": [],  # An agent without tools.
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
    handle = await caller.start(
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
    handle = await caller.start(
        temporal_client,
        caller_queue,
        caller.CallInput(stigmer.endpoint, agent.metadata.id, "#sleep=30", max_attempts=3),
    )
    execution = await next_execution()
    await wait_for(
        stigmer,
        execution.metadata.id,
        lambda e: e.status.phase == status_pb2.EXECUTION_PHASE_RUNNING,
    )
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


async def test_execution_timeout_fails_the_caller_with_execution_timeout(
    stigmer: Stubs, temporal_client: Client, caller_queue: str
) -> None:
    agent = await stigmer.agent("echo")
    handle = await caller.start(
        temporal_client,
        caller_queue,
        caller.CallInput(stigmer.endpoint, agent.metadata.id, "#sleep=30", timeout_seconds=1),
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), WAIT)
    assert isinstance(failure.value.cause, ActivityError)
    cause = failure.value.cause.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable) == ("ExecutionTimeout", True)
    execution = await next_execution()
    stored = await wait_for(stigmer, execution.metadata.id, callback_settled)
    assert stored.status.phase == status_pb2.EXECUTION_PHASE_FAILED
    assert stored.status.error.type == "ExecutionTimeout"
    assert stored.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED


async def test_cancelling_the_callers_workflow_cancels_the_execution(
    stigmer: Stubs, temporal_client: Client, caller_queue: str
) -> None:
    agent = await stigmer.agent("echo")
    handle = await caller.start(
        temporal_client,
        caller_queue,
        caller.CallInput(stigmer.endpoint, agent.metadata.id, "#sleep=30"),
    )
    execution = await next_execution()
    await wait_for(
        stigmer,
        execution.metadata.id,
        lambda e: e.status.phase == status_pb2.EXECUTION_PHASE_RUNNING,
    )
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), WAIT)
    assert isinstance(failure.value.cause, CancelledError)
    stored = await wait_for(stigmer, execution.metadata.id, callback_settled)
    assert stored.status.phase == status_pb2.EXECUTION_PHASE_CANCELLED
    assert stored.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
    assert stored.status.callback.outcome == status_pb2.CALLBACK_OUTCOME_CANCELLED


async def test_one_sweeper_keeps_a_long_waiting_caller_alive(
    stigmer: Stubs, temporal_client: Client, caller_queue: str
) -> None:
    """The agent runs three times the caller's heartbeat timeout; the service's one caller
    sweeper (every 0.5 s here) keeps the caller's activity alive meanwhile."""
    settings = stigmer.service.settings
    sweeper = temporal_client.get_workflow_handle(callers.workflow_id(settings.task_queue))
    first_run = await running_sweeper_run(temporal_client, settings.task_queue)
    # Another replica starting (or this one restarting) joins the running sweeper.
    await worker.start_caller_heartbeats(temporal_client, settings)
    assert (await sweeper.describe()).run_id == first_run
    agent = await stigmer.agent("echo")
    handle = await caller.start(
        temporal_client,
        caller_queue,
        caller.CallInput(
            stigmer.endpoint, agent.metadata.id, "#sleep=6 #reply=still here", heartbeat_timeout=2
        ),
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"] == "still here"
    await assert_never_timed_out(handle)


async def assert_never_timed_out(handle: WorkflowHandle[Any, Any]) -> None:
    """The caller's activity never hit its heartbeat (or any) timeout."""
    history = await handle.fetch_history()
    assert not any(e.activity_task_timed_out_event_attributes.ByteSize() for e in history.events)


async def running_sweeper_run(client: Client, task_queue: str) -> str:
    """The run id of the queue's sweeper once it runs (the service starts it in the background)."""
    sweeper = client.get_workflow_handle(callers.workflow_id(task_queue))

    async def running() -> str:
        try:
            description = await sweeper.describe()
        except RPCError as error:
            raise AssertionError("the caller sweeper is not running") from error
        assert (
            description.status == WorkflowExecutionStatus.RUNNING
        ), "the caller sweeper is not running"
        return description.run_id or ""

    return await eventually(running, timeout=WAIT)


async def test_a_terminated_sweeper_is_started_again(
    temporal_client: Client, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "SWEEPER_CHECK_INTERVAL", 0.5)
    settings = fast_settings(tmp_path)
    async with app.running(settings, client=temporal_client):
        first = await running_sweeper_run(temporal_client, settings.task_queue)
        await temporal_client.get_workflow_handle(
            callers.workflow_id(settings.task_queue)
        ).terminate("an operator's mistake")

        async def started_again() -> str:
            run = await running_sweeper_run(temporal_client, settings.task_queue)
            assert run != first, "the terminated sweeper was not started again"
            return run

        again = await eventually(started_again, timeout=WAIT)
        assert again != first


async def test_the_sweeper_moves_to_another_replica_when_its_own_stops(
    temporal_client: Client, tmp_path: pathlib.Path, caller_queue: str
) -> None:
    """Two replicas share the database and the task queue. The sweeper runs on the first; the
    first stops while an agent runs for three times the caller's heartbeat timeout; the second
    takes the sweeper over (after the sweeper's heartbeat timeout) and the caller gets its
    answer."""
    settings = fast_settings(tmp_path, activity_heartbeat_timeout=1.0)
    async with contextlib.AsyncExitStack() as replicas:
        first = await replicas.enter_async_context(app.running(settings, client=temporal_client))
        await running_sweeper_run(temporal_client, settings.task_queue)
        # A replica is its own process, with its own Temporal client.
        own_client = await Client.connect(temporal_client.service_client.config.target_host)
        second = await replicas.enter_async_context(app.running(settings, client=own_client))
        stubs = await open_stubs(second)
        replicas.push_async_callback(stubs.channel.close)
        agent = await stubs.agent("echo")
        handle = await caller.start(
            temporal_client,
            caller_queue,
            caller.CallInput(
                second.address, agent.metadata.id, "#sleep=9 #reply=survived", heartbeat_timeout=3
            ),
        )
        execution = await next_execution()
        await wait_for(
            stubs,
            execution.metadata.id,
            lambda e: e.status.phase == status_pb2.EXECUTION_PHASE_RUNNING,
        )
        # The first replica goes away: its worker stops, its activities are retried elsewhere.
        await first.server.stop(0)
        assert first.worker is not None
        await first.worker.shutdown()
        result = await asyncio.wait_for(handle.result(), WAIT)
        assert result["output"] == "survived"
        await assert_never_timed_out(handle)


async def test_late_callback_is_recorded_as_already_closed(
    stigmer: Stubs, temporal_client: Client, caller_queue: str
) -> None:
    agent = await stigmer.agent("echo")
    handle = await caller.start(
        temporal_client,
        caller_queue,
        caller.CallInput(stigmer.endpoint, agent.metadata.id, "#sleep=3", activity_timeout=1),
    )
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), WAIT)  # The caller timed out.
    execution = await next_execution()
    stored = await wait_for(stigmer, execution.metadata.id, callback_settled)
    # The caller's workflow closed, so nobody waits: the execution was cancelled, and its
    # callback found the activity already closed, which is recorded and is not an error.
    assert stored.status.phase in (
        status_pb2.EXECUTION_PHASE_CANCELLED,
        status_pb2.EXECUTION_PHASE_COMPLETED,
    )
    assert stored.status.callback.state == status_pb2.CALLBACK_STATE_ALREADY_CLOSED
    assert stored.status.callback.last_error == ""
    assert stored.status.callback.delivered_at.seconds > 0


@pytest.mark.parametrize(
    ("message", "outcome"),
    [
        ("#reply=landed", status_pb2.CALLBACK_OUTCOME_COMPLETED),
        ("#fail=ModelError", status_pb2.CALLBACK_OUTCOME_FAILED),
    ],
)
async def test_a_delivery_whose_answer_was_lost_is_recorded_delivered(
    stigmer: Stubs,
    temporal_client: Client,
    caller_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    message: str,
    outcome: int,
) -> None:
    """Temporal applied the first completion but its answer never came back (a server restart,
    an RPC timeout): the retry gets NOT_FOUND, and the caller's history shows it was ours."""
    real_send = callback.send
    sends: list[str] = []

    async def applied_then_lost(*args: Any, **kwargs: Any) -> None:
        await real_send(*args, **kwargs)
        sends.append("applied")
        if len(sends) == 1:
            raise RPCError("the answer was lost", RPCStatusCode.UNAVAILABLE, b"")

    monkeypatch.setattr(callback, "send", applied_then_lost)
    agent = await stigmer.agent("echo")
    handle = await caller.start(
        temporal_client,
        caller_queue,
        caller.CallInput(stigmer.endpoint, agent.metadata.id, message),
    )
    if outcome == status_pb2.CALLBACK_OUTCOME_COMPLETED:
        assert (await asyncio.wait_for(handle.result(), WAIT))["output"] == "landed"
    else:
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), WAIT)
    execution = await next_execution()
    stored = await wait_for(stigmer, execution.metadata.id, callback_settled)
    assert sends == ["applied"]  # The retry found the activity closed and sent nothing more.
    assert stored.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
    assert stored.status.callback.outcome == outcome
    assert stored.status.callback.attempts == 2


async def test_duplicate_callback_is_not_sent_and_would_be_harmless(
    stigmer: Stubs, temporal_client: Client, caller_queue: str
) -> None:
    agent = await stigmer.agent("echo")
    handle = await caller.start(
        temporal_client,
        caller_queue,
        caller.CallInput(stigmer.endpoint, agent.metadata.id, "#reply=once"),
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    execution = await next_execution()
    await wait_for(stigmer, execution.metadata.id, callback_settled)
    settings = stigmer.service.settings
    # A second delivery of the same token (a racing cancel, an operator) is not sent at all.
    again = await temporal_client.execute_workflow(
        CallbackWorkflow.run,
        CallbackWorkflowInput(execution.metadata.id, execution_policy(settings)),
        id=f"duplicate-{uuid.uuid4()}",
        task_queue=settings.task_queue,
    )
    assert again.state == status_pb2.CALLBACK_STATE_DELIVERED
    stored = await stigmer.queries.GetAgentExecution(
        query_pb2.GetAgentExecutionRequest(id=execution.metadata.id)
    )
    assert stored.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    assert stored.status.output == result["output"] == "once"
    assert stored.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
    assert stored.status.callback.attempts == 1
    # Were it sent, Temporal would refuse it: a token completes its activity once.
    store = stigmer.service.store
    token = (await store.for_delivery(execution.metadata.id)).token
    record = await store.get_execution(execution.metadata.id)
    with pytest.raises(RPCError) as refused:
        await callback.send(temporal_client, store, token, record, rpc_timeout=5)
    assert refused.value.status == RPCStatusCode.NOT_FOUND
    # And a NOT_FOUND racing a delivery never turns DELIVERED into ALREADY_CLOSED.
    assert not await store.record_callback(
        execution.metadata.id,
        for_token_hash=record.token_hash,
        state=status_pb2.CALLBACK_STATE_ALREADY_CLOSED,
    )


async def assistant_messages(stigmer: Stubs, execution_id: str) -> int:
    stored = await stigmer.queries.GetAgentExecution(
        query_pb2.GetAgentExecutionRequest(id=execution_id)
    )
    return sum(1 for m in stored.status.messages if m.role == status_pb2.MESSAGE_ROLE_ASSISTANT)


@pytest.mark.parametrize(
    ("message", "retry_interval"),
    [
        # The retry's new token arrives while the agent still runs.
        ("#sleep=2 #reply=done", 0.1),
        # The retry's new token arrives after the execution ended (and its callback found the
        # first attempt closed): the outcome is delivered to the new token right away.
        ("#reply=done", 3.0),
    ],
    ids=["while-running", "after-the-end"],
)
async def test_retried_caller_gets_one_run_and_its_callback(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, message: str, retry_interval: float
) -> None:
    agent = await stigmer.agent("echo")
    handle = await caller.start(
        temporal_client,
        caller_queue,
        caller.CallInput(
            stigmer.endpoint,
            agent.metadata.id,
            message,
            max_attempts=2,
            first_attempt="crash",
            retry_interval=retry_interval,
        ),
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    first, second = await next_execution(), await next_execution()
    assert first.metadata.id == second.metadata.id == result["execution_id"]
    assert result["output"] == "done"
    assert caller.attempts == [1, 2]
    listed = await stigmer.queries.ListAgentExecutions(
        query_pb2.ListAgentExecutionsRequest(agent_id=agent.metadata.id)
    )
    assert len(listed.executions) == 1
    assert await assistant_messages(stigmer, first.metadata.id) == 1
    token_1, token_2 = caller.tokens.get_nowait(), caller.tokens.get_nowait()
    stored = await wait_for(stigmer, first.metadata.id, callback_settled)
    assert stored.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
    assert stored.status.callback.token_hash == hashlib.sha256(token_2).hexdigest()[:12]
    assert token_1 != token_2


async def test_no_callback_without_a_token(stigmer: Stubs) -> None:
    agent = await stigmer.agent("echo")
    created = await stigmer.executions.CreateAgentExecution(
        command_pb2.CreateAgentExecutionRequest(
            execution=api_pb2.AgentExecution(
                spec=spec_pb2.AgentExecutionSpec(agent_id=agent.metadata.id, message="hi")
            )
        )
    )
    assert created.status.callback.state == status_pb2.CALLBACK_STATE_NOT_REQUESTED
    stored = await wait_for(
        stigmer,
        created.metadata.id,
        lambda e: e.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED,
    )
    assert stored.status.output == "echo: hi"
    await asyncio.sleep(0.5)  # Give a wrongly scheduled callback the time to show up.
    stored = await stigmer.queries.GetAgentExecution(
        query_pb2.GetAgentExecutionRequest(id=created.metadata.id)
    )
    assert stored.status.callback.state == status_pb2.CALLBACK_STATE_NOT_REQUESTED
    assert stored.status.callback.attempts == 0
    assert not stored.status.callback.token_present


async def test_workflow_start_failure_is_unavailable_and_leaves_nothing(
    tmp_path: pathlib.Path,
) -> None:
    dead = await Client.connect(f"127.0.0.1:{temporal_dev_server.free_port()}", lazy=True)
    settings = fast_settings(tmp_path, start_rpc_timeout=1.0)
    async with app.running(settings, run_worker=False, client=dead) as service:
        stubs = await open_stubs(service)
        try:
            agent = await stubs.agent("echo")
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stubs.executions.CreateAgentExecution(
                    command_pb2.CreateAgentExecutionRequest(
                        execution=api_pb2.AgentExecution(
                            spec=spec_pb2.AgentExecutionSpec(
                                agent_id=agent.metadata.id, message="hi", callback_token=b"tok"
                            )
                        )
                    ),
                    timeout=WAIT,
                )
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            listed = await stubs.queries.ListAgentExecutions(query_pb2.ListAgentExecutionsRequest())
            assert list(listed.executions) == []
        finally:
            await stubs.channel.close()


async def test_transient_errors_are_retried_then_reported_retryable(
    stigmer: Stubs, temporal_client: Client, caller_queue: str
) -> None:
    agent = await stigmer.agent("echo")
    # Two transient failures, then an answer, within the activity's three attempts.
    handle = await caller.start(
        temporal_client,
        caller_queue,
        caller.CallInput(stigmer.endpoint, agent.metadata.id, "#transient-fail=2 #reply=ok"),
    )
    assert (await asyncio.wait_for(handle.result(), WAIT))["output"] == "ok"
    # More transient failures than attempts: the caller gets a retryable TransientModelError.
    handle = await caller.start(
        temporal_client,
        caller_queue,
        caller.CallInput(stigmer.endpoint, agent.metadata.id, "#transient-fail=9"),
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), WAIT)
    assert isinstance(failure.value.cause, ActivityError)
    cause = failure.value.cause.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable) == ("TransientModelError", False)
