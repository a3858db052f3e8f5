"""Acceptance (issue 15): a DSL workflow calls an agent that calls two MCP tools (one server over
stdio, one over streamable HTTP) and one sub-agent, then answers. The caller gets the answer and
the step summary; `get` shows every step in order with the workflow's secret masked; the secret
is in no workflow history and no read."""

from __future__ import annotations

import asyncio
import json
import pathlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import yaml
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import status_pb2
from temporalio.client import Client
from typer.testing import CliRunner

from backend.stigmer_service import logs
from backend.stigmer_service.cli import app as cli_app
from backend.stigmer_service.execution.workflow_ids import workflow_id
from backend.workflow_runner.dsl import loader
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow
from tests.support import executions, tickets, tickets_http
from tests.support.service import Stubs, fast_settings, serving

WAIT = 60
SECRET = "sk-dsl-tools-8d41c2"
# The workflow runner reads `$secrets.API_TOKEN` from this variable of its environment.
SECRET_ENV = "STIGMER_SECRET_API_TOKEN"

# The offline model runs one `#tool=` line per turn, then answers with the results it got. The
# lookup and the delegation come from the input; the comment, which carries the workflow's
# secret, is written here. `\u0023` keeps the sub-agent's `#reply=` out of the lead's message.
TRIAGE = yaml.safe_load(
    r"""
document: {dsl: 1.0.0, namespace: e2e, name: triage-with-tools, version: 1.0.0}
use:
  secrets: [API_TOKEN]
do:
  - triage:
      call: agent
      with:
        agent: lead
        org: acme
        message: >-
          ${ "Triage ticket " + .id + ".\n" + (.script | join("\n"))
          + "\n#tool=tickets.add_comment:"
          + ({id: .id, text: ("triaged, key " + $secrets.API_TOKEN)} | tojson) }
        env:
          PYTHONPATH: ${ .pythonpath }
          TICKETS_COMMENTS_FILE: ${ .commentsFile }
      output:
        as: '${ {answer: .output, execution: .execution_id, steps: .steps} }'
"""
)
SCRIPT = [
    '#tool=desk.lookup_ticket:{"id": "T-1"}',
    '#tool=agents.researcher:{"message": "\\u0023reply=T-1 is a checkout bug"}',
]
LOOKUP = json.dumps(
    {"id": "T-1", "priority": "high", "status": "open", "title": "Checkout fails with a 502"},
    sort_keys=True,
)


@pytest.fixture(scope="module", autouse=True)
def _service_logs() -> None:
    """The in-process service logs to stderr, never into the CLI output a test reads."""
    logs.configure()


@pytest_asyncio.fixture
async def stigmer(
    tmp_path: pathlib.Path,
    temporal_client: Client,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Stubs]:
    """The service and the workflow runner's worker (on `task_queue`), which knows the secret."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    async with (
        serving(fast_settings(tmp_path), temporal_client) as stubs,
        build_worker(temporal_client, task_queue, stigmer_endpoint=stubs.endpoint),
    ):
        yield stubs


@pytest_asyncio.fixture
async def desk_url(tmp_path: pathlib.Path) -> AsyncIterator[str]:
    async with tickets_http.serving(tmp_path) as url:
        yield url


async def lead_agent(stigmer: Stubs, desk_url: str) -> None:
    """The lead: the desk's add_comment over stdio, its lookup_ticket over HTTP (with the
    secret as a header), and the researcher as its sub-agent."""
    await stigmer.agent(
        "researcher", model="offline/echo", description="Finds out what is known about a ticket."
    )
    await stigmer.agent(
        "lead",
        model="offline/echo",
        instructions="Triage support tickets.",
        mcp_servers=[
            tickets.stdio_server("tickets", enabled_tools=["add_comment"]),
            tickets_http.http_server(
                "desk",
                desk_url,
                headers={"Authorization": "Bearer {{secret:API_TOKEN}}"},
                enabled_tools=["lookup_ticket"],
            ),
        ],
        sub_agents=[agent_spec_pb2.SubAgent(name="researcher", agent="researcher")],
    )


async def run(client: Client, task_queue: str, data: dict[str, Any]) -> tuple[Any, str]:
    """The workflow's output and its id."""
    assert loader.validate(TRIAGE) == []
    handle = await client.start_workflow(
        DslWorkflow.run,
        DslRunInput(TRIAGE, data),
        id=f"triage-{uuid.uuid4()}",
        task_queue=task_queue,
    )
    return await asyncio.wait_for(handle.result(), WAIT), handle.id


async def cli(*args: str) -> str:
    shown = await asyncio.to_thread(CliRunner().invoke, cli_app, list(args))
    assert shown.exit_code == 0, shown.output
    return shown.output


async def test_two_mcp_tools_and_a_sub_agent_then_the_answer(
    stigmer: Stubs,
    desk_url: str,
    temporal_client: Client,
    task_queue: str,
    tmp_path: pathlib.Path,
) -> None:
    await lead_agent(stigmer, desk_url)
    comments = tmp_path / "comments.jsonl"
    data = {
        "id": "T-1",
        "script": SCRIPT,
        "pythonpath": tickets.PYTHONPATH,
        "commentsFile": str(comments),
    }
    output, dsl_workflow = await run(temporal_client, task_queue, data)

    # The caller: the answer (the offline model's: the results it heard, in order) and the
    # summary of the steps, the delegation with its child's execution.
    assert output["answer"] == f"lead: {LOOKUP} | T-1 is a checkout bug | comment added to T-1"
    summary = output["steps"]
    assert all(isinstance(s.pop("duration_ms"), int) for s in summary), summary
    child_id = summary[1].get("sub_execution_id", "")
    assert summary == [
        {"index": 0, "kind": "tool_call", "tool": "desk.lookup_ticket", "error": False},
        {
            "index": 1,
            "kind": "sub_agent",
            "tool": "agents.researcher",
            "sub_execution_id": child_id,
            "error": False,
        },
        {"index": 2, "kind": "tool_call", "tool": "tickets.add_comment", "error": False},
        {"index": 3, "kind": "message", "error": False},
    ]
    assert child_id

    # Get: every step in order, with its arguments (the secret masked) and its result.
    parent = await executions.ended(stigmer, output["execution"])
    status = parent.status
    assert status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    assert status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
    assert status.callback.attempts == 1
    steps = [
        (
            s.index,
            s.kind,
            s.tool_server,
            s.tool_name,
            s.arguments_json and json.loads(s.arguments_json),
        )
        for s in status.steps
    ]
    assert steps == [
        (0, status_pb2.STEP_KIND_TOOL_CALL, "desk", "lookup_ticket", {"id": "T-1"}),
        (
            1,
            status_pb2.STEP_KIND_SUB_AGENT,
            "agents",
            "researcher",
            {"message": "#reply=T-1 is a checkout bug"},
        ),
        (
            2,
            status_pb2.STEP_KIND_TOOL_CALL,
            "tickets",
            "add_comment",
            {"id": "T-1", "text": "triaged, key ***"},
        ),
        (3, status_pb2.STEP_KIND_ASSISTANT_MESSAGE, "", "", ""),
    ]
    assert [s.result for s in status.steps] == [
        LOOKUP,
        "T-1 is a checkout bug",
        "comment added to T-1",
        output["answer"],
    ]
    assert not any(s.error for s in status.steps)
    assert all(s.HasField("duration") for s in status.steps)
    started = [s.started_at.ToDatetime() for s in status.steps]
    assert started == sorted(started)
    assert status.steps[1].sub_execution_id == child_id
    # The tool got the masked text, once: the secret never reached an argument.
    assert tickets.comments(comments) == [{"id": "T-1", "text": "triaged, key ***"}]

    # The sub-agent ran as an execution of its own, a child of the lead's, heard exactly once.
    child = await executions.ended(stigmer, child_id)
    assert child.status.parent_execution_id == parent.metadata.id
    assert child.metadata.org == parent.metadata.org
    assert child.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    assert child.status.output == "T-1 is a checkout bug"
    assert (child.status.callback.state, child.status.callback.attempts) == (
        status_pb2.CALLBACK_STATE_DELIVERED,
        1,
    )

    # `stigmer-service get execution`: one line per step, in order, arguments masked.
    text = await cli("get", "execution", parent.metadata.id, "--endpoint", stigmer.endpoint)
    lines = [line.strip() for line in text.splitlines()]
    first = lines.index("steps (4):")
    shown = lines[first + 1 : first + 5]
    assert [line.split()[0] for line in shown] == ["0", "1", "2", "3"], text
    assert shown[0].startswith('0 tool    desk.lookup_ticket {"id": "T-1"} -> '), text
    assert shown[1].startswith("1 agent   agents.researcher "), text
    assert "-> T-1 is a checkout bug" in shown[1], text
    assert shown[2].startswith("2 tool    tickets.add_comment "), text
    assert "triaged, key ***" in shown[2], text
    as_json = json.loads(
        await cli(
            "get", "execution", parent.metadata.id, "--endpoint", stigmer.endpoint, "-o", "json"
        )
    )
    assert as_json["status"]["steps"][1]["subExecutionId"] == child_id
    assert json.loads(as_json["status"]["steps"][2]["argumentsJson"])["text"] == "triaged, key ***"
    child_json = json.loads(
        await cli("get", "execution", child_id, "--endpoint", stigmer.endpoint, "-o", "json")
    )
    assert child_json["status"]["parentExecutionId"] == parent.metadata.id

    # The secret: in no read, no CLI output, and no workflow history (the DSL run's, the lead's,
    # the researcher's, which carried it as a secret runtime-env entry).
    for shown_text in (str(parent), str(child), text, json.dumps(as_json), json.dumps(child_json)):
        assert SECRET not in shown_text
    for workflow in (dsl_workflow, workflow_id(parent.metadata.id), workflow_id(child_id)):
        history = await executions.history_text(temporal_client, workflow)
        assert SECRET not in history, workflow
    # What the DSL run's history carries instead: the message with the secret's placeholder.
    dsl_history = await executions.history_text(temporal_client, dsl_workflow)
    assert ":API_TOKEN}}" in dsl_history
