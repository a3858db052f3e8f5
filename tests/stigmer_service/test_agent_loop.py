"""Agents with tools on the dev server: the durable loop (a model turn and each tool call are
activities), its steps in Get, its ends delivered to the caller exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, query_pb2, status_pb2
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError

from backend.common import contract
from examples.mcp import tickets_server
from tests.stigmer_service import caller
from tests.support import model_server
from tests.support.eventually import eventually
from tests.support.model_server import ModelServer, answer
from tests.support.openai_wire import tool_calls
from tests.support.service import Stubs, fast_settings, serving

WAIT = 60
SECRET = "sekret-7f3a9c"
# What the stdio server's Python needs to import the SDK and this repo.
PYTHONPATH = os.pathsep.join(p for p in sys.path if p)


def tickets(**fields: Any) -> agent_spec_pb2.McpServer:
    """The example ticket desk over stdio, given the two env values it needs by name."""
    return agent_spec_pb2.McpServer(
        name="tickets",
        stdio=agent_spec_pb2.StdioTransport(
            command=sys.executable,
            args=["-m", tickets_server.__name__],
            env=["PYTHONPATH", tickets_server.COMMENTS_FILE_ENV],
        ),
        **fields,
    )


def call(
    stigmer: Stubs, agent: agent_api_pb2.Agent, message: str, comments: pathlib.Path
) -> caller.CallInput:
    return caller.CallInput(
        stigmer.endpoint,
        agent.metadata.id,
        message,
        secrets={"API_TOKEN": SECRET},
        env={"PYTHONPATH": PYTHONPATH, tickets_server.COMMENTS_FILE_ENV: str(comments)},
    )


async def settled(stigmer: Stubs, execution_id: str) -> api_pb2.AgentExecution:
    async def done() -> api_pb2.AgentExecution:
        execution = await stigmer.queries.GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=execution_id)
        )
        assert execution.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
        return execution

    return await eventually(done, timeout=WAIT, every=0.1)


def tool_steps(execution: api_pb2.AgentExecution) -> list[tuple[str, str]]:
    return [
        (s.tool_server, s.tool_name)
        for s in execution.status.steps
        if s.kind == status_pb2.STEP_KIND_TOOL_CALL
    ]


async def test_two_tools_then_the_answer(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    comments = tmp_path / "comments.jsonl"
    agent = await stigmer.agent("desk", model="offline/echo", mcp_servers=[tickets()])
    message = "\n".join(
        [
            "Look at T-1 and note it.",
            '#tool=tickets.lookup_ticket:{"id": "T-1"}',
            '#tool=tickets.add_comment:{"id": "T-1", "text": "seen, key {{secret:API_TOKEN}}"}',
        ]
    )
    handle = await caller.start(
        temporal_client, caller_queue, call(stigmer, agent, message, comments)
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    lookup = json.dumps(
        {"id": "T-1", "priority": "high", "status": "open", "title": "Checkout fails with a 502"},
        sort_keys=True,
    )
    # The offline model's answer is the tool results it was given, in order.
    assert result["output"] == f"desk: {lookup} | comment added to T-1"
    execution = await settled(stigmer, result["execution_id"])
    status = execution.status
    assert status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    assert status.callback.attempts == 1
    assert [s.index for s in status.steps] == [0, 1, 2]
    assert [s.kind for s in status.steps] == [
        status_pb2.STEP_KIND_TOOL_CALL,
        status_pb2.STEP_KIND_TOOL_CALL,
        status_pb2.STEP_KIND_ASSISTANT_MESSAGE,
    ]
    assert tool_steps(execution) == [("tickets", "lookup_ticket"), ("tickets", "add_comment")]
    first, second, last = status.steps
    assert json.loads(first.arguments_json) == {"id": "T-1"}
    assert first.result == lookup and not first.error
    # The secret the model saw in its message is masked in the step (and was never sent).
    assert json.loads(second.arguments_json) == {"id": "T-1", "text": "seen, key ***"}
    assert SECRET not in str(execution)
    assert second.result == "comment added to T-1"
    assert first.HasField("duration") and first.HasField("started_at")
    assert last.result == result["output"]
    # The side effect happened once.
    lines = comments.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"id": "T-1", "text": "seen, key ***"}]


async def test_a_tool_error_goes_back_to_the_model(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    agent = await stigmer.agent("desk", model="offline/echo", mcp_servers=[tickets()])
    message = '#tool=tickets.escalate_ticket:{"id": "T-2"}'
    handle = await caller.start(
        temporal_client, caller_queue, call(stigmer, agent, message, tmp_path / "c.jsonl")
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"].startswith("desk: error: ")
    assert "the pager service is unavailable" in result["output"]
    execution = await settled(stigmer, result["execution_id"])
    step = execution.status.steps[0]
    assert "the pager service is unavailable" in step.error and not step.result


async def test_a_disabled_tool_is_refused_to_the_model(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    comments = tmp_path / "c.jsonl"
    server = tickets(enabled_tools=["lookup_ticket"])
    agent = await stigmer.agent("desk", model="offline/echo", mcp_servers=[server])
    message = '#tool=tickets.add_comment:{"id": "T-1", "text": "x"}\n#reply=gave up'
    handle = await caller.start(
        temporal_client, caller_queue, call(stigmer, agent, message, comments)
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"] == "gave up"
    execution = await settled(stigmer, result["execution_id"])
    assert "no tool" in execution.status.steps[0].error
    assert not comments.exists()


async def test_max_steps_exhausted_is_a_typed_error(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    agent = await stigmer.agent("desk", model="offline/echo", mcp_servers=[tickets()], max_steps=2)
    message = "\n".join(['#tool=tickets.lookup_ticket:{"id": "T-1"}'] * 3)
    handle = await caller.start(
        temporal_client, caller_queue, call(stigmer, agent, message, tmp_path / "c.jsonl")
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), WAIT)
    assert isinstance(failure.value.cause, ActivityError)
    cause = failure.value.cause.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable) == (contract.MAX_STEPS_EXCEEDED, True)
    execution_id = cause.details[0]["execution_id"]
    execution = await settled(stigmer, execution_id)
    assert execution.status.phase == status_pb2.EXECUTION_PHASE_FAILED
    assert execution.status.error.type == contract.MAX_STEPS_EXCEEDED
    assert tool_steps(execution) == [("tickets", "lookup_ticket")] * 2


async def test_an_agent_without_tools_keeps_the_one_call_path(
    stigmer: Stubs, temporal_client: Client, caller_queue: str
) -> None:
    agent = await stigmer.agent("echo", model="offline/echo")
    handle = await caller.start(
        temporal_client,
        caller_queue,
        caller.CallInput(stigmer.endpoint, agent.metadata.id, "#reply=plain"),
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"] == "plain"
    history = await temporal_client.get_workflow_handle(
        f"agent-execution-{result['execution_id']}"
    ).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled == ["run_agent"]
    execution = await settled(stigmer, result["execution_id"])
    assert not execution.status.steps


_STDIO = agent_spec_pb2.StdioTransport
_HTTP = agent_spec_pb2.HttpTransport


@pytest.mark.parametrize(
    ("server", "field"),
    [
        (agent_spec_pb2.McpServer(name="Bad Name", stdio=_STDIO(command="x")), "name"),
        (agent_spec_pb2.McpServer(name="ok"), "transport"),
        (agent_spec_pb2.McpServer(name="ok", stdio=_STDIO()), "stdio.command"),
        (agent_spec_pb2.McpServer(name="ok", http=_HTTP(url="ftp://x")), "http.url"),
        (
            agent_spec_pb2.McpServer(name="ok", stdio=_STDIO(command="x", env=["A B"])),
            "stdio.env[0]",
        ),
    ],
)
async def test_invalid_servers_name_the_field(
    stigmer: Stubs, server: agent_spec_pb2.McpServer, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stigmer.agent("bad", model="offline/echo", mcp_servers=[server])
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"agent.spec.mcp_servers[0].{field}" in (error.value.details() or "")


async def test_max_steps_is_bounded(stigmer: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stigmer.agent("bad", model="offline/echo", max_steps=51)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "agent.spec.max_steps" in (error.value.details() or "")


@pytest.fixture
def fake() -> Iterator[ModelServer]:
    with model_server.serving() as server:
        yield server


@pytest_asyncio.fixture
async def served_by_fake(
    tmp_path: pathlib.Path, temporal_client: Client, fake: ModelServer
) -> AsyncIterator[Stubs]:
    """The service with an OpenAI-compatible provider `fake` at the scripted model server."""
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        f"providers:\n  fake: {{kind: openai-compatible, base_url: '{fake.base_url}'}}\n"
    )
    settings = fast_settings(tmp_path, providers_file=str(providers))
    async with serving(settings, temporal_client) as stubs:
        yield stubs


async def test_openai_tool_calls_drive_the_same_loop(
    served_by_fake: Stubs,
    fake: ModelServer,
    temporal_client: Client,
    caller_queue: str,
    tmp_path: pathlib.Path,
) -> None:
    stigmer = served_by_fake
    comments = tmp_path / "comments.jsonl"
    agent = await stigmer.agent("desk", model="fake/tiny", mcp_servers=[tickets()])
    fake.script = [
        (200, tool_calls(("call_a", "tickets__lookup_ticket", {"id": "T-3"}))),
        (200, tool_calls(("call_b", "tickets__add_comment", {"id": "T-3", "text": "ok"}))),
        (200, answer("T-3 is closed; noted.")),
    ]
    handle = await caller.start(
        temporal_client, caller_queue, call(stigmer, agent, "What about T-3?", comments)
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"] == "T-3 is closed; noted."
    execution = await settled(stigmer, result["execution_id"])
    assert tool_steps(execution) == [("tickets", "lookup_ticket"), ("tickets", "add_comment")]
    assert len(comments.read_text().splitlines()) == 1
    bodies = [json.loads(seen.body) for seen in fake.seen]
    assert len(bodies) == 3
    functions = {t["function"]["name"] for t in bodies[0]["tools"]}
    assert {"tickets__lookup_ticket", "tickets__add_comment"} <= functions
    assert all(t["type"] == "function" for t in bodies[0]["tools"])
    # The third request carries both calls and their results, as OpenAI documents it.
    third = bodies[2]["messages"]
    assert [m["role"] for m in third] == ["user", "assistant", "tool", "assistant", "tool"]
    assert third[1]["tool_calls"][0]["id"] == "call_a"
    assert third[1]["tool_calls"][0]["function"]["name"] == "tickets__lookup_ticket"
    assert (third[2]["tool_call_id"], third[4]["tool_call_id"]) == ("call_a", "call_b")
    assert "Export to CSV times out" in third[2]["content"]
    assert third[4]["content"] == "comment added to T-3"
