"""A cancelled workflow cancels its agent call's execution at once (issue 17), not at the
service's next heartbeat of the caller, which in a large deployment comes minutes later; and a
history recorded before that change still replays."""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    AsyncActivityCancelledError,
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHistory,
)
from temporalio.exceptions import CancelledError
from temporalio.worker import Replayer, Worker

from backend.workflow_runner.agent_call.activities import agent_call_activities
from backend.workflow_runner.agent_call.models import CallAgentInput
from tests.workflow_runner.agent_call.agent_call_workflow import AgentCallWorkflow
from tests.workflow_runner.agent_call.fake_stigmer import FakeStigmer, serve_fake

WAIT = 30
HISTORIES = pathlib.Path(__file__).parent / "histories"


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[tuple[FakeStigmer, str]]:
    async with serve_fake() as served:
        served[0].add_agent("writer", org="acme")
        yield served


async def test_the_execution_is_cancelled_before_any_heartbeat_of_the_service(
    temporal_client: Client, task_queue: str, fake: tuple[FakeStigmer, str]
) -> None:
    service, endpoint = fake
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[AgentCallWorkflow],
        activities=agent_call_activities(endpoint),
    ):
        handle = await temporal_client.start_workflow(
            AgentCallWorkflow.run,
            CallAgentInput(agent="writer", org="acme", message="hi"),
            id=f"agent-call-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        created = await asyncio.wait_for(service.created.get(), WAIT)
        await handle.cancel()
        # Nobody heartbeats the caller here (the fake is no sweeper): the runner itself found
        # the execution in its activity's heartbeat details and cancelled it.
        assert await asyncio.wait_for(service.cancelled.get(), WAIT) == created.execution_id
        assert service.cancels[0].reason == "the calling workflow was cancelled"
        # The workflow still waits for the activity's cancellation, which the service reports
        # once the execution has ended (the service's heartbeat sees it cancel-requested).
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        activity = temporal_client.get_async_activity_handle(task_token=created.token)
        with pytest.raises(AsyncActivityCancelledError):
            await activity.heartbeat({"execution_id": created.execution_id})
        await activity.report_cancellation({"execution_id": created.execution_id})
        with pytest.raises(WorkflowFailureError) as raised:
            await asyncio.wait_for(handle.result(), WAIT)
        assert isinstance(raised.value.cause, CancelledError)
        assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    # Cancelled once: not again on the way out.
    assert len(service.cancels) == 1

    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled == ["call_agent", "cancel_agent_call"]
    replayed = await Replayer(workflows=[AgentCallWorkflow]).replay_workflow(history)
    assert replayed.replay_failure is None


async def test_a_cancelled_call_recorded_before_the_change_replays() -> None:
    """Recorded with the runner of 88fe564, before the change, as the test above runs (fake
    service; cancel; heartbeat until cancelled; report_cancellation), so the execution was
    cancelled on the way out: no patch marker, so the new code takes the old path on replay."""
    path = HISTORIES / "cancelled_call_before_prompt_cancel.json"
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayed = await Replayer(workflows=[AgentCallWorkflow]).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None
