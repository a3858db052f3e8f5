"""The worker: runs until SIGTERM, then stops cleanly; cancelling a run cancels its tasks."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from backend.common.temporal_dev_server import DevServer
from backend.workflow_runner import worker
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.workflows import DslWorkflow
from tests.workflow_runner import scenarios

pytestmark = pytest.mark.timeout(60)


async def test_run_worker_serves_workflows_until_sigterm(
    temporal_client: Client, temporal_server: DevServer, task_queue: str
) -> None:
    running = asyncio.create_task(
        worker.run_worker(temporal_server.address, "default", task_queue, 2, "127.0.0.1:1")
    )
    handle = await temporal_client.start_workflow(
        DslWorkflow.run,
        DslRunInput(scenarios.inline("do:\n  - a: {set: {ok: true}}"), {}),
        id=f"wf-{uuid.uuid4()}",
        task_queue=task_queue,
    )
    assert await asyncio.wait_for(handle.result(), 30) == {"ok": True}
    assert not running.done()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(running, 30)
    # The handlers are gone with the worker: the test process keeps its own.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


async def test_cancelling_a_workflow_cancels_its_running_tasks(
    temporal_client: Client, task_queue: str
) -> None:
    document = scenarios.inline(
        """
do:
  - guarded:
      try:
        - nap: {wait: PT60S}
      catch:
        do: [{swallowed: {set: {caught: true}}}]
"""
    )
    async with worker.build_worker(
        temporal_client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES
    ):
        handle = await temporal_client.start_workflow(
            DslWorkflow.run,
            DslRunInput(document, {}),
            id=f"wf-{uuid.uuid4()}",
            task_queue=task_queue,
        )

        # The timer is in history once the first workflow task completed; long-poll for it.
        async def timer_started() -> None:
            async for event in handle.fetch_history_events(wait_new_event=True):
                if event.HasField("timer_started_event_attributes"):
                    return

        await asyncio.wait_for(timer_started(), 20)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), 20)
    assert isinstance(failure.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
