"""DslWorkflow on the real dev server, under the real workflow sandbox (jq, jsonschema inside)."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from backend.workflow_runner.dsl import errors
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow
from tests.workflow_runner import scenarios
from tests.workflow_runner.scenarios import run_workflow

pytestmark = pytest.mark.timeout(60)


async def test_orders_example_runs_set_for_switch_wait_and_export(
    temporal_client: Client, task_queue: str
) -> None:
    result, progress = await run_workflow(
        temporal_client,
        task_queue,
        scenarios.example("orders.yaml"),
        {
            "customer": "ada",
            "lines": [
                {"item": "book", "price": 30, "quantity": 2},
                {"item": "pen", "price": 5, "quantity": 10},
            ],
        },
    )
    assert result == {
        "size": "large",
        "total": 110,
        "labels": ["1. book x2", "2. pen x10"],
        "customer": "ada",
    }
    assert [(p.path, p.status) for p in progress] == [
        ("/do/0/total", "completed"),
        ("/do/1/label/do/0/addLabel", "completed"),
        ("/do/1/label/do/0/addLabel", "completed"),
        ("/do/1/label", "completed"),
        ("/do/2/classify", "completed"),
        ("/do/3/markLarge", "completed"),
        ("/do/5/finish", "completed"),
    ]


async def test_agent_calls_switch_on_the_first_answer_and_catch_the_failing_one(
    temporal_client: Client, task_queue: str
) -> None:
    document = scenarios.example("agents.yaml")
    urgent, _ = await run_workflow(
        temporal_client, task_queue, document, {"ticket": "the site is down"}
    )
    assert urgent == {"category": "urgent", "paged": False, "reason": "model overloaded"}
    routine, _ = await run_workflow(
        temporal_client, task_queue, document, {"ticket": "please change my email"}
    )
    assert routine == {
        "category": "routine",
        "reply": "writer answers: Write a short reply to: please change my email",
    }


async def test_fork_compete_and_retry(temporal_client: Client, task_queue: str) -> None:
    result, _ = await run_workflow(temporal_client, task_queue, scenarios.FORK_AND_RETRY, {})
    assert result == {"recovered": "flaky", "winner": "quick"}


async def test_call_http_json(temporal_client: Client, task_queue: str) -> None:
    with scenarios.http_server() as server:
        result, _ = await run_workflow(
            temporal_client,
            task_queue,
            scenarios.example("weather.yaml"),
            {"baseUrl": server.url, "city": "paris"},
        )
        assert result == {"city": "paris", "celsius": 21}
        echoed, _ = await run_workflow(
            temporal_client,
            task_queue,
            scenarios.http_document(server.url, "/echo?x=1", output="response"),
            {"n": 7},
        )
    assert echoed["statusCode"] == 200
    assert echoed["content"] == {
        "method": "POST",
        "path": "/echo?x=1",
        "body": {"n": 7},
        "header": "yes",
    }


async def test_call_http_retries_an_idempotent_request_on_503_then_succeeds(
    temporal_client: Client, task_queue: str
) -> None:
    with scenarios.http_server() as server:
        document = scenarios.http_document(server.url, "/flaky", method="get")
        result, _ = await run_workflow(temporal_client, task_queue, document, {"n": 1})
        assert result == {"ok": True, "attempt": 2}
        assert server.hits["/flaky"] == 2


async def test_call_http_never_resends_a_post_that_reached_the_server(
    temporal_client: Client, task_queue: str
) -> None:
    with scenarios.http_server() as server:
        with pytest.raises(WorkflowFailureError) as failure:
            await run_workflow(
                temporal_client, task_queue, scenarios.http_document(server.url, "/flaky"), {"n": 1}
            )
        assert server.hits["/flaky"] == 1
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.details[0]["status"] == 503


async def test_call_http_404_fails_clearly_without_retrying(
    temporal_client: Client, task_queue: str
) -> None:
    with scenarios.http_server() as server:
        with pytest.raises(WorkflowFailureError) as failure:
            await run_workflow(
                temporal_client, task_queue, scenarios.http_document(server.url, "/nope"), {"n": 1}
            )
        assert server.hits["/nope"] == 1
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == errors.COMMUNICATION
    error = cause.details[0]
    assert error["type"] == errors.COMMUNICATION
    assert error["status"] == 404
    assert error["instance"] == "/do/0/call"
    assert "returned 404" in error["detail"]


async def test_raise_fails_the_workflow_with_the_dsl_error(
    temporal_client: Client, task_queue: str
) -> None:
    document = scenarios.inline(
        """
do:
  - ok: {set: {x: 1}}
  - fail:
      raise:
        error: {type: "https://example.com/rejected", status: 422, title: Rejected, detail: "${ .x | tostring }"}
"""
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await run_workflow(temporal_client, task_queue, document, {})
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.non_retryable
    assert cause.details[0] == {
        "type": "https://example.com/rejected",
        "status": 422,
        "title": "Rejected",
        "detail": "1",
        "instance": "/do/1/fail",
    }


async def test_an_invalid_document_from_another_client_fails_without_running(
    temporal_client: Client, task_queue: str
) -> None:
    document = scenarios.inline("do:\n  - bad: {teleport: {}}")
    with pytest.raises(WorkflowFailureError) as failure:
        await run_workflow(temporal_client, task_queue, document, {})
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.details[0]["type"] == errors.CONFIGURATION
    assert "/do/0/bad: unknown task type" in cause.details[0]["detail"]


async def test_call_http_resolves_secrets_in_the_activity_only(
    temporal_client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_SECRET_API_TOKEN", "s3cret-value")
    document = scenarios.inline(
        """
use:
  secrets: [API_TOKEN]
do:
  - call:
      call: http
      with:
        method: post
        endpoint: {uri: "${ .url }"}
        headers: {x-test: "${ $secrets.API_TOKEN }"}
        body: {token: "${ \\"Bearer \\" + $secrets.API_TOKEN }"}
      output: {as: "${ .header + \\" \\" + .body.token }"}
"""
    )
    with scenarios.http_server() as server:
        async with build_worker(
            temporal_client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES
        ):
            handle = await temporal_client.start_workflow(
                DslWorkflow.run,
                DslRunInput(document, {"url": server.url + "/echo"}),
                id=f"wf-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            # The server echoed the resolved value; what comes back to the workflow is masked.
            assert await asyncio.wait_for(handle.result(), 30) == "*** Bearer ***"
    history = await handle.fetch_history()
    scheduled = [
        event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    [activity_input] = [payload.data.decode() for payload in scheduled[0].input.payloads]
    assert re.search(r"\{\{secret:[0-9a-f]{32}:API_TOKEN\}\}", activity_input)
    assert "s3cret" not in activity_input


async def test_call_http_with_an_unknown_secret_fails_without_retrying(
    temporal_client: Client, task_queue: str
) -> None:
    document = scenarios.inline(
        """
use:
  secrets: [NOT_SET_ANYWHERE]
do:
  - call:
      call: http
      with:
        method: get
        endpoint: "${ .url }"
        headers: {authorization: "${ $secrets.NOT_SET_ANYWHERE }"}
"""
    )
    with scenarios.http_server() as server, pytest.raises(WorkflowFailureError) as failure:
        await run_workflow(temporal_client, task_queue, document, {"url": server.url + "/echo"})
    assert server.hits["/echo"] == 0
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.details[0]["type"] == "SecretNotFound"
    assert cause.details[0]["instance"] == "/do/0/call"
    assert "NOT_SET_ANYWHERE" in cause.details[0]["detail"]
