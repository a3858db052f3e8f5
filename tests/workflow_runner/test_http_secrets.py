"""`call: http` and secrets through the real DSL worker: values never leave the activity
(issue 14, finding 1), and placeholders that came from data never resolve (finding 3)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from backend.workflow_runner.dsl import errors, loader
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow
from tests.support.leaks import forms, history_text
from tests.support.recording_server import recording_server
from tests.workflow_runner import scenarios

pytestmark = pytest.mark.timeout(90)

# Distinctive (any fragment of it would show) and in need of percent-encoding in a URI.
TOKEN = "tok S3CRET/7f1e9a"
PASSWORD = "pw-DBPASS-0c4d1b"


async def _run(
    client: Client, task_queue: str, document: dict[str, Any], workflow_input: Any
) -> tuple[WorkflowHandle[Any, Any], Any]:
    async with build_worker(client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES):
        handle = await client.start_workflow(
            DslWorkflow.run,
            DslRunInput(document, workflow_input),
            id=f"wf-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        try:
            result: Any = await asyncio.wait_for(handle.result(), 60)
        except WorkflowFailureError as failure:
            result = failure
    return handle, result


LEAKY = scenarios.inline(
    """
use:
  secrets: [T]
do:
  - withResponse:
      call: http
      with:
        method: get
        endpoint: ${ $workflow.input.base + "/echo" }
        headers:
          authorization: ${ "Bearer " + $secrets.T }
        output: response
  - failing:
      try:
        - inUri:
            call: http
            with:
              method: get
              endpoint: ${ $workflow.input.base + "/fail?token=" + $secrets.T }
      catch:
        as: failure
        do:
          - keep: {set: {response: "${ $input }", error: "${ $failure }"}}
  - unreachable:
      try:
        - refused:
            call: http
            with:
              method: get
              endpoint: http://127.0.0.1:1/x
              query: {token: "${ $secrets.T }"}
      catch:
        as: failure
        do:
          - keep: {set: {response: "${ $input.response }", error: "${ $input.error }", transport: "${ $failure }"}}
"""
)


async def test_resolved_secrets_reach_the_server_but_no_history_result_or_log(
    temporal_client: Client,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("STIGMER_SECRET_T", TOKEN)
    caplog.set_level(logging.DEBUG)
    with recording_server() as server:
        handle, result = await _run(temporal_client, task_queue, LEAKY, {"base": server.url})
    assert isinstance(result, dict), result
    # The server got the value, echoed it in a header and in the body, and in an error page.
    assert server.received[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert server.received[1].path.startswith("/fail?token=")
    response = result["response"]
    assert response["request"]["headers"] == {"authorization": "Bearer {{secret:T}}"}
    assert response["headers"]["x-echo-authorization"] == "Bearer ***"
    assert response["content"]["headers"]["authorization"] == "Bearer ***"
    assert "{{secret:T}}" in result["error"]["detail"] and "500" in result["error"]["detail"]
    assert "***" in result["error"]["detail"]  # The error page's echo of the query, masked.
    assert result["transport"]["type"] == errors.COMMUNICATION
    assert "{{secret:T}}" in result["transport"]["detail"]

    scanned = {
        "history": history_text(await handle.fetch_history()),
        "result": repr(result),
        "logs": caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records),
        "output": "".join(capfd.readouterr()),
    }
    # The scan reads decoded payloads: the activity inputs' sealed placeholders are there.
    assert '"Bearer {{secret:' in scanned["history"]
    for where, text in scanned.items():
        assert "S3CRET" not in text, where
        for form in forms(TOKEN):
            assert form not in text, (where, form)


async def test_placeholders_in_data_stay_literal_text(
    temporal_client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_SECRET_DB_PASSWORD", PASSWORD)
    document = scenarios.inline(
        """
use:
  secrets: [DB_PASSWORD]
do:
  - post:
      call: http
      with:
        method: post
        endpoint: ${ $workflow.input.base + "/echo" }
        headers: {x-declared: "${ $secrets.DB_PASSWORD }"}
        body: ${ {x, y, z} }
      output: {as: "${ .body | fromjson }"}
  - again:
      call: http
      with:
        method: post
        endpoint: ${ $workflow.input.base + "/echo" }
        body: ${ . }
      output: {as: "${ .body | fromjson }"}
"""
    )
    forged = {
        "x": "{{secret:DB_PASSWORD}}",
        "y": "{{secret:" + "0" * 32 + ":DB_PASSWORD}}",
        "z": "{{secret:0123456789abcdef0123456789abcdef:DB_PASSWORD}} and {{secret:DB_PASSWORD}}",
    }
    with recording_server() as server:
        _handle, result = await _run(
            temporal_client, task_queue, document, {"base": server.url, **forged}
        )
    assert result == forged
    # The document's own expression resolved; the data did not, twice over.
    assert server.received[0].headers["x-declared"] == PASSWORD
    for received in server.received:
        assert PASSWORD.encode() not in received.body
        assert b"{{secret:DB_PASSWORD}}" in received.body


UNDECLARED = """
use:
  secrets: [DECLARED]
do:
  - call:
      call: http
      with:
        method: get
        endpoint: http://127.0.0.1:1/
        headers: {authorization: "${ \\"Bearer \\" + $secrets.NOT_DECLARED }"}
"""


def test_an_undeclared_secret_is_a_validation_problem() -> None:
    problems = loader.validate(scenarios.inline(UNDECLARED))
    assert [str(p) for p in problems] == [
        "/do/0/call/with/headers/authorization: $secrets.NOT_DECLARED is not declared in "
        "use.secrets"
    ]
    assert loader.validate(scenarios.inline(UNDECLARED.replace("NOT_DECLARED", "DECLARED"))) == []


async def test_an_undeclared_secret_fails_the_run_as_a_configuration_error(
    temporal_client: Client, task_queue: str
) -> None:
    _handle, result = await _run(temporal_client, task_queue, scenarios.inline(UNDECLARED), None)
    assert isinstance(result, WorkflowFailureError)
    cause = result.cause
    assert isinstance(cause, ApplicationError)
    assert cause.details[0]["type"] == errors.CONFIGURATION
    assert "NOT_DECLARED is not declared in use.secrets" in cause.details[0]["detail"]
