"""Found by the crash tests while adding observability: a retried `run_agent` (its first attempt
recorded the end, then the service was killed before Temporal heard of it) must deliver the
recorded end, not run the agent again nor report the execution as cancelled before it ran."""

from __future__ import annotations

import pathlib

from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from backend.stigmer_service import app, states
from backend.stigmer_service.execution.activities import ExecutionActivities
from backend.stigmer_service.execution.models import ExecutionRef
from backend.stigmer_service.store.records import NewExecution
from tests.support.service import fast_settings


def new_execution(agent_id: str, message: str) -> NewExecution:
    return NewExecution(
        org="acme",
        name="",
        labels={},
        agent_id=agent_id,
        session_id=f"ses-{message}",
        message=message,
        config={"modelName": "offline/echo"},
        caller={},
        runtime_env={},
        token=b"",  # No caller to call back: the activity alone is under test.
        idempotency_key="",
    )


async def test_a_retried_run_agent_delivers_the_recorded_end_without_running_again(
    temporal_client: Client, tmp_path: pathlib.Path
) -> None:
    settings = fast_settings(tmp_path)
    store = await app.open_store(settings)
    try:
        agent = await store.create_agent(
            org="acme", slug="echo", name="echo", labels={}, annotations={}, spec={}
        )
        activities = ExecutionActivities(store, temporal_client, settings)
        ran = await store.create_execution(new_execution(agent.id, "hi"))
        ref = ExecutionRef(ran.execution.id)
        first = await ActivityEnvironment().run(activities.run_agent, ref)
        retried = await ActivityEnvironment().run(activities.run_agent, ref)
        assert first.phase == retried.phase == states.PHASE_COMPLETED
        assert first.callback_state == retried.callback_state == states.CALLBACK_NOT_REQUESTED
        stored = await store.get_execution(ref.execution_id)
        assert stored.output == "echo: hi"
        # One answer: the retry did not run the agent again.
        assert [m.role for m in stored.messages] == [states.ROLE_USER, states.ROLE_ASSISTANT]

        # Cancelled before it ran: stays cancelled, the agent never runs.
        cancelled = await store.create_execution(new_execution(agent.id, "never"))
        await store.finish(cancelled.execution.id, phase=states.PHASE_CANCELLED)
        result = await ActivityEnvironment().run(
            activities.run_agent, ExecutionRef(cancelled.execution.id)
        )
        assert result.phase == states.PHASE_CANCELLED
        stored = await store.get_execution(cancelled.execution.id)
        assert stored.started_at is None
        assert [m.role for m in stored.messages] == [states.ROLE_USER]
    finally:
        await store.engine.dispose()
