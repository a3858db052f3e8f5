"""Budgets and unexpected errors through the real DslWorkflow on the dev server: a run that would
hold the workflow thread, or whose values the interpreter cannot use, fails as a DSL error
instead of leaving its workflow task failing and retrying forever."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError

from backend.workflow_runner.dsl import errors
from backend.workflow_runner.dsl.errors import DslError
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow
from tests.workflow_runner import scenarios
from tests.workflow_runner.scenarios import run_workflow

pytestmark = pytest.mark.timeout(60)


async def failure_of(
    client: Client, task_queue: str, text: str, workflow_input: object
) -> DslError:
    with pytest.raises(WorkflowFailureError) as failure:
        await run_workflow(client, task_queue, scenarios.inline(text), workflow_input)
    return DslError.from_failure(failure.value)


async def test_a_task_that_jumps_to_itself_fails_the_workflow(
    temporal_client: Client, task_queue: str
) -> None:
    error = await failure_of(
        temporal_client, task_queue, "do:\n  - a: {set: {x: 1}, then: a}", None
    )
    assert (error.type, error.title, error.instance) == (
        errors.RUNTIME,
        "Budget thenJumps exceeded",
        "/do/0/a",
    )


async def test_an_expression_that_would_fill_memory_fails_the_workflow(
    temporal_client: Client, task_queue: str
) -> None:
    text = "do:\n  - big: {set: {n: '${ [range(1e9)] | length }'}}"
    error = await failure_of(temporal_client, task_queue, text, None)
    assert (error.title, error.instance) == ("Budget expressionIterations exceeded", "/do/0/big")


@pytest.mark.parametrize(
    ("task", "detail"),
    [
        (
            "{call: agent, with: {agent: a, message: m, config: {temperature: hot}}}",
            "ValueError: could not convert string to float: 'hot'",
        ),
        (
            "{call: http, with: {method: get, endpoint: '${ {url: \"http://x\"} }'}}",
            "KeyError: 'uri'",
        ),
        (
            "{input: {schema: {document: {$ref: '#/nowhere'}}}, set: {}}",
            "_WrappedReferencingError: PointerToNowhere: '/nowhere' does not exist within "
            "{'$ref': '#/nowhere'}",
        ),
    ],
)
async def test_an_unexpected_interpreter_error_fails_the_workflow_naming_the_task(
    temporal_client: Client, task_queue: str, task: str, detail: str
) -> None:
    error = await failure_of(temporal_client, task_queue, f"do:\n  - bad: {task}", {})
    assert error.to_dict() == {
        "type": errors.RUNTIME,
        "status": 500,
        "title": "Unexpected error",
        "detail": detail,
        "instance": "/do/0/bad",
    }


async def test_a_long_loop_spreads_over_workflow_tasks_on_durable_timers(
    temporal_client: Client, task_queue: str
) -> None:
    document = scenarios.inline(
        "do:\n  - each: {for: {in: .items}, do: [{add: {set: {n: '${ $item }'}}}]}"
    )
    async with build_worker(
        temporal_client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES
    ):
        handle = await temporal_client.start_workflow(
            DslWorkflow.run,
            DslRunInput(document, {"items": list(range(5500))}),
            id=f"wf-loop-{task_queue}",
            task_queue=task_queue,
        )
        assert await handle.result() == {"n": 5499}
        history = await handle.fetch_history()
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert len(timers) == 1  # at the 5000th of 5501 tasks
    failed_tasks = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert failed_tasks == []
