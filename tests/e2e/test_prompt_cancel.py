"""A cancelled `call: agent` against the real service, whose heartbeats of the caller are
minutes apart (issue 17: a large deployment's cadence): the execution is cancelled at once by
the runner, not at the next heartbeat, and the workflow ends CANCELED."""

from __future__ import annotations

import asyncio
import pathlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from ai.stigmer.agentic.agentexecution.v1 import status_pb2
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.worker import Worker

from backend.stigmer_service import app
from backend.workflow_runner.agent_call.activities import agent_call_activities
from backend.workflow_runner.agent_call.models import CallAgentInput
from tests.e2e.conftest import AGENT
from tests.e2e.test_agent_call_against_service import get_execution
from tests.support import service as in_process
from tests.support.agents import ORG, create_agent
from tests.support.eventually import eventually
from tests.workflow_runner.agent_call.agent_call_workflow import AgentCallWorkflow

# The service's first heartbeat of a fresh caller comes one interval after its creation.
HEARTBEAT_INTERVAL = 120.0
WAIT = 45


@pytest_asyncio.fixture
async def slow_heartbeats(
    temporal_client: Client, tmp_path: pathlib.Path
) -> AsyncIterator[app.Service]:
    settings = in_process.settings(
        tmp_path,
        f"stigmer-e2e-{uuid.uuid4()}",
        temporal_address="unused: the client is given",
        caller_heartbeat_interval=HEARTBEAT_INTERVAL,
        grace_period=1.0,
    )
    async with app.running(settings, client=temporal_client) as running:
        await create_agent(running.address, AGENT, ORG, instructions="Echo.")
        yield running


async def test_a_cancelled_call_cancels_its_running_agent_without_waiting_for_a_heartbeat(
    temporal_client: Client, task_queue: str, slow_heartbeats: app.Service
) -> None:
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[AgentCallWorkflow],
        activities=agent_call_activities(slow_heartbeats.address),
    ):
        handle = await temporal_client.start_workflow(
            AgentCallWorkflow.run,
            CallAgentInput(
                agent=AGENT, org=ORG, message="#sleep=60 then answer", model="offline/echo"
            ),
            id=f"agent-call-{uuid.uuid4()}",
            task_queue=task_queue,
        )

        async def running_execution() -> str:
            pending = (await handle.describe()).raw_description.pending_activities
            assert len(pending) == 1, "the call is not scheduled yet"
            payloads = list(pending[0].heartbeat_details.payloads)
            assert payloads, "the execution is not created yet"
            [details] = await temporal_client.data_converter.decode(payloads)
            execution = await get_execution(slow_heartbeats, details["execution_id"])
            assert execution.status.phase == status_pb2.EXECUTION_PHASE_RUNNING
            return str(details["execution_id"])

        execution_id = await eventually(running_execution, timeout=WAIT, every=0.2)
        cancelled_at = time.monotonic()
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as raised:
            await asyncio.wait_for(handle.result(), WAIT)
        ended_after = time.monotonic() - cancelled_at
        assert isinstance(raised.value.cause, CancelledError)
        assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
        # Well before the service's first heartbeat of this caller was due.
        assert ended_after < HEARTBEAT_INTERVAL / 4, ended_after
        print(f"\nworkflow cancelled -> CANCELED in {ended_after:.2f} s")

        async def delivered() -> None:
            execution = await get_execution(slow_heartbeats, execution_id)
            assert execution.status.phase == status_pb2.EXECUTION_PHASE_CANCELLED
            assert execution.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
            assert execution.status.callback.outcome == status_pb2.CALLBACK_OUTCOME_CANCELLED

        await eventually(delivered, timeout=WAIT)
