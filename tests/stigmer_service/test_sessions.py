"""Sessions run one execution at a time: a later execution of a session waits (its workflow
holding a timer and a signal, no activity) until every earlier one has ended, then sees their
answers in its history."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib

from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    query_pb2,
    spec_pb2,
    status_pb2,
)
from temporalio.client import Client, WorkflowFailureError

from backend.stigmer_service.execution.workflow_ids import workflow_id
from tests.stigmer_service import caller
from tests.support.eventually import eventually
from tests.support.service import Stubs

WAIT = 60
SESSION = "support-chat-7"


async def get(stigmer: Stubs, execution_id: str) -> api_pb2.AgentExecution:
    return await stigmer.queries.GetAgentExecution(
        query_pb2.GetAgentExecutionRequest(id=execution_id)
    )


async def create(stigmer: Stubs, agent_id: str, message: str) -> api_pb2.AgentExecution:
    """A direct execution (no callback) in the test's session."""
    return await stigmer.executions.CreateAgentExecution(
        command_pb2.CreateAgentExecutionRequest(
            execution=api_pb2.AgentExecution(
                spec=spec_pb2.AgentExecutionSpec(
                    agent_id=agent_id, session_id=SESSION, message=message
                )
            )
        )
    )


async def phase_of(stigmer: Stubs, execution_id: str) -> int:
    return (await get(stigmer, execution_id)).status.phase


async def ended(stigmer: Stubs, execution_id: str) -> api_pb2.AgentExecution:
    async def done() -> api_pb2.AgentExecution:
        execution = await get(stigmer, execution_id)
        assert execution.status.phase in (
            status_pb2.EXECUTION_PHASE_COMPLETED,
            status_pb2.EXECUTION_PHASE_FAILED,
            status_pb2.EXECUTION_PHASE_CANCELLED,
        )
        return execution

    return await eventually(done, timeout=WAIT, every=0.1)


async def scheduled(client: Client, execution_id: str) -> list[str]:
    history = await client.get_workflow_handle(workflow_id(execution_id)).fetch_history()
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


async def test_the_second_execution_waits_for_the_first_and_sees_its_answer(
    stigmer: Stubs, temporal_client: Client, tmp_path: pathlib.Path
) -> None:
    gate = tmp_path / "gate"
    agent = await stigmer.agent("chat", model="offline/echo")
    first = await create(stigmer, agent.metadata.id, f"#wait-for={gate}\n#reply=forty-two")
    second = await create(stigmer, agent.metadata.id, "#history")

    async def first_runs() -> None:
        assert await phase_of(stigmer, first.metadata.id) == status_pb2.EXECUTION_PHASE_RUNNING

    await eventually(first_runs, timeout=WAIT)
    # The second is queued: still PENDING while the first runs, and no activity of it runs
    # but the one that looked up the session (its workflow waits on a timer and a signal).
    await asyncio.sleep(1.0)
    assert await phase_of(stigmer, second.metadata.id) == status_pb2.EXECUTION_PHASE_PENDING
    assert await scheduled(temporal_client, second.metadata.id) == ["session_ahead"]
    gate.touch()
    done_first = await ended(stigmer, first.metadata.id)
    done_second = await ended(stigmer, second.metadata.id)
    assert done_first.status.output == "forty-two"
    assert done_second.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    # It saw the first execution's question and answer.
    assert done_second.status.output == (f"user: #wait-for={gate} | assistant: forty-two")
    started = done_second.status.started_at.ToDatetime()
    assert started >= done_first.status.completed_at.ToDatetime()


async def test_a_queued_execution_can_be_cancelled_and_the_next_one_goes_on(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    gate = tmp_path / "gate"
    agent = await stigmer.agent("chat", model="offline/echo")
    await create(stigmer, agent.metadata.id, f"#wait-for={gate}\n#reply=one")
    # The queued one is a caller's: cancelling it must reach the caller exactly once.
    handle = await caller.start(
        temporal_client,
        caller_queue,
        caller.CallInput(stigmer.endpoint, agent.metadata.id, "#reply=two", session_id=SESSION),
    )
    queued = await asyncio.wait_for(caller.created.get(), WAIT)
    third = await create(stigmer, agent.metadata.id, "#history")

    async def is_queued() -> None:
        assert await scheduled(temporal_client, queued.metadata.id) == ["session_ahead"]

    await eventually(is_queued, timeout=WAIT)
    await stigmer.executions.CancelAgentExecution(
        command_pb2.CancelAgentExecutionRequest(id=queued.metadata.id, reason="not needed")
    )
    with contextlib.suppress(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), WAIT)
    cancelled = await ended(stigmer, queued.metadata.id)
    assert cancelled.status.phase == status_pb2.EXECUTION_PHASE_CANCELLED
    assert cancelled.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
    assert cancelled.status.callback.attempts == 1
    # The third still waits for the first, not for the cancelled one.
    assert await phase_of(stigmer, third.metadata.id) == status_pb2.EXECUTION_PHASE_PENDING
    gate.touch()
    done_third = await ended(stigmer, third.metadata.id)
    assert done_third.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    assert "assistant: one" in done_third.status.output
    assert not (await get(stigmer, queued.metadata.id)).status.output
