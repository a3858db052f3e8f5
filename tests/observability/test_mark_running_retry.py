"""Found by the crash tests while adding observability: a retried `mark_running` (its first
attempt wrote RUNNING, then the service was killed before Temporal heard of it) must report the
execution as started, not as cancelled before it ran."""

from __future__ import annotations

import pathlib

from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from backend.stigmer_service import app, states
from backend.stigmer_service.execution.activities import ExecutionActivities
from backend.stigmer_service.execution.models import ExecutionRef
from backend.stigmer_service.store.records import NewExecution
from tests.stigmer_service.conftest import fast_settings


async def test_a_retried_mark_running_finds_the_execution_started(
    temporal_client: Client, tmp_path: pathlib.Path
) -> None:
    settings = fast_settings(tmp_path)
    store = await app.open_store(settings)
    try:
        agent = await store.create_agent(
            org="acme", slug="echo", name="echo", labels={}, annotations={}, spec={}
        )
        created = await store.create_execution(
            NewExecution(
                org="acme",
                name="",
                labels={},
                agent_id=agent.id,
                session_id="ses-1",
                message="hi",
                config={},
                caller={},
                runtime_env={},
                token=b"token",
                idempotency_key="",
            )
        )
        activities = ExecutionActivities(store, temporal_client, settings)
        ref = ExecutionRef(created.execution.id)
        first = await ActivityEnvironment().run(activities.mark_running, ref)
        retried = await ActivityEnvironment().run(activities.mark_running, ref)
        assert first.started and retried.started
        assert (await store.get_execution(ref.execution_id)).phase == states.PHASE_RUNNING

        # Cancelled before it ran: still not started.
        await store.finish(ref.execution_id, phase=states.PHASE_CANCELLED)
        assert not (await ActivityEnvironment().run(activities.mark_running, ref)).started
    finally:
        await store.engine.dispose()
