"""docs/agents.md works as written: its agent manifests applied to a real service, its workflow
run through the workflow runner against the example ticket desk over stdio and over HTTP, the
gated tool call approved with the page's CLI command while nothing runs."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import pytest_asyncio
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    command_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    spec_pb2,
    status_pb2,
)
from temporalio.client import Client
from typer.testing import CliRunner

from backend.common.temporal_dev_server import free_port
from backend.stigmer_service import app
from backend.stigmer_service.cli import app as cli_app
from backend.workflow_runner.dsl import loader
from backend.workflow_runner.worker import build_worker
from examples import walkthrough
from tests.docs import docs_text
from tests.support import tickets
from tests.support.eventually import eventually
from tests.support.processes import child_env
from tests.support.service import fast_settings

PAGE = docs_text.REPO / "docs" / "agents.md"
_YAML = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)
# The port the page's HTTP example names; the test's server gets a free one instead.
DOC_PORT = 8931
TOKEN = "tickets-token-5e1d"
WAIT = 60


def yaml_blocks() -> list[str]:
    return _YAML.findall(PAGE.read_text(encoding="utf-8"))


# What the example desk's lookup_ticket answers for T-2 (the offline model repeats it).
T2 = json.dumps(
    {"id": "T-2", "priority": "low", "status": "open", "title": "Typo on the pricing page"},
    sort_keys=True,
)


@pytest.fixture
def http_port(tmp_path: pathlib.Path) -> Iterator[int]:
    """The example ticket desk over streamable HTTP, as the page says to start it."""
    port = free_port()
    log = tmp_path / "tickets-http.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", tickets.SERVER_MODULE, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(),
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest_asyncio.fixture
async def stack(
    tmp_path: pathlib.Path, temporal_client: Client, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, str]]:
    """The service and the workflow runner's worker: (service endpoint, runner task queue)."""
    # The workflow runner reads the workflow's secrets from its environment.
    monkeypatch.setenv("STIGMER_SECRET_TICKETS_TOKEN", TOKEN)
    queue = f"docs-agents-{uuid.uuid4()}"
    async with (
        app.running(fast_settings(tmp_path), client=temporal_client) as service,
        build_worker(temporal_client, queue, stigmer_endpoint=service.address),
    ):
        yield service.address, queue


async def awaiting_approval(endpoint: str, workflow_ids: list[str]) -> api_pb2.AgentExecution:
    """The workflow's one execution with a step awaiting approval."""
    assert workflow_ids, "the workflow has not started yet"
    listed = await walkthrough.executions_of(endpoint, workflow_ids[0])
    waiting = [
        e
        for e in listed
        if any(s.approval.state == status_pb2.APPROVAL_STATE_AWAITING for s in e.status.steps)
    ]
    assert len(waiting) == 1, "no step awaits approval yet"
    return waiting[0]


def test_the_page_has_the_examples_this_test_runs() -> None:
    blocks = yaml_blocks()
    assert [b for b in blocks if "kind: Agent" in b] == [blocks[0], blocks[1], blocks[3]]
    assert "document:" in blocks[2] and len(blocks) == 4
    assert "subAgents:" in blocks[3]
    assert f"http://127.0.0.1:{DOC_PORT}/mcp" in blocks[1]
    assert loader.validate(loader.load_text(blocks[2])) == []


async def test_the_page_s_agents_and_workflow_run(
    stack: tuple[str, str], temporal_client: Client, tmp_path: pathlib.Path, http_port: int
) -> None:
    endpoint, queue = stack
    stdio_agent, http_agent, workflow, _ = yaml_blocks()
    manifest = tmp_path / "agents.yaml"
    # As written, except the HTTP server's port; `command: python` becomes this interpreter as
    # the demo does it (walkthrough.apply_agents).
    manifest.write_text(
        stdio_agent + "---\n" + http_agent.replace(f":{DOC_PORT}/", f":{http_port}/")
    )
    applied = await walkthrough.apply_agents(endpoint, manifest)
    assert [a.metadata.slug for a in applied] == ["ticket-desk", "ticket-desk-remote"]
    comments = tmp_path / "comments.jsonl"

    started: list[str] = []
    run = asyncio.ensure_future(
        walkthrough.run_workflow(
            temporal_client,
            queue,
            loader.load_text(workflow),
            {"id": "T-2", "commentsFile": str(comments)},
            lambda entry, elapsed: None,
            on_started=lambda workflow_id, run_id: started.append(workflow_id),
        )
    )
    try:
        waiting = await eventually(
            lambda: awaiting_approval(endpoint, started), timeout=WAIT, every=0.2
        )
        # The gated add_comment waits, holding no activity, and has not run.
        handle = temporal_client.get_workflow_handle(f"agent-execution-{waiting.metadata.id}")
        assert list((await handle.describe()).raw_description.pending_activities) == []
        assert not comments.exists()
        approved = await asyncio.to_thread(
            CliRunner().invoke,
            cli_app,
            ["approve", waiting.metadata.id, "1", "--reason", "checked", "--endpoint", endpoint],
        )
        assert approved.exit_code == 0, approved.output
        result = await asyncio.wait_for(run, WAIT)
    finally:
        run.cancel()

    assert result.error is None, result.error.describe()
    assert result.output["note"] == f"ticket-desk: {T2} | comment added to T-2"
    assert result.output["check"] == f"ticket-desk-remote: {T2}"
    # add_comment's side effect, once.
    assert [json.loads(line) for line in comments.read_text().splitlines()] == [
        {"id": "T-2", "text": "seen by support"}
    ]
    executions = await walkthrough.executions_of(endpoint, result.workflow_id)
    steps = [[(s.index, s.kind, s.tool_name, s.error) for s in e.status.steps] for e in executions]
    tool, message = status_pb2.STEP_KIND_TOOL_CALL, status_pb2.STEP_KIND_ASSISTANT_MESSAGE
    assert steps == [
        [(0, tool, "lookup_ticket", ""), (1, tool, "add_comment", ""), (2, message, "", "")],
        [(0, tool, "lookup_ticket", ""), (1, message, "", "")],
    ]
    assert executions[0].status.steps[1].approval.state == status_pb2.APPROVAL_STATE_APPROVED
    assert executions[0].status.steps[1].approval.reason == "checked"
    assert json.loads(executions[0].status.steps[1].arguments_json) == {
        "id": "T-2",
        "text": "seen by support",
    }
    # The HTTP header's secret was resolved for the call only: nowhere in what the service shows.
    assert all(TOKEN not in str(e) for e in executions)


async def test_the_page_s_sub_agent_delegates(
    stack: tuple[str, str], tmp_path: pathlib.Path
) -> None:
    endpoint, _ = stack
    stdio_agent, _, _, lead = yaml_blocks()
    manifest = tmp_path / "agents.yaml"
    manifest.write_text(stdio_agent + "---\n" + lead)
    applied = await walkthrough.apply_agents(endpoint, manifest)
    assert [a.metadata.slug for a in applied] == ["ticket-desk", "triage-lead"]
    # The lead's model asks the desk, whose model looks T-2 up (offline directives, per level).
    ask = json.dumps({"message": '#tool=tickets.lookup_ticket:{"id": "T-2"}'})
    spec = spec_pb2.AgentExecutionSpec(
        agent_id=applied[1].metadata.id,
        message=f"#tool=agents.desk:{ask}",
        runtime_env={
            "TICKETS_COMMENTS_FILE": spec_pb2.ExecutionValue(value=str(tmp_path / "c.jsonl"))
        },
    )
    async with grpc.aio.insecure_channel(endpoint) as channel:
        commands = command_pb2_grpc.AgentExecutionCommandServiceStub(channel)
        queries = query_pb2_grpc.AgentExecutionQueryServiceStub(channel)
        created = await commands.CreateAgentExecution(
            command_pb2.CreateAgentExecutionRequest(execution=api_pb2.AgentExecution(spec=spec))
        )

        async def get(execution_id: str) -> api_pb2.AgentExecution:
            return await queries.GetAgentExecution(
                query_pb2.GetAgentExecutionRequest(id=execution_id)
            )

        async def completed() -> api_pb2.AgentExecution:
            execution = await get(created.metadata.id)
            assert execution.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED, execution.status
            return execution

        lead_run = await eventually(completed, timeout=WAIT, every=0.2)
        step = lead_run.status.steps[0]
        child = await get(step.sub_execution_id)
    assert (step.kind, step.tool_server, step.tool_name) == (
        status_pb2.STEP_KIND_SUB_AGENT,
        "agents",
        "desk",
    )
    assert child.status.parent_execution_id == created.metadata.id
    assert child.status.output == f"ticket-desk: {T2}"
    assert lead_run.status.output == f"triage-lead: ticket-desk: {T2}"
