"""Acceptance (issue 15): the agent flows on an OpenAI-compatible endpoint that answers with
`tool_calls` (the scripted fake, tests/support/model_server.py): a delegation to a sub-agent
beside two MCP tools, and a gated tool call approved or rejected. Each request the fake received
is checked against Chat Completions function calling as OpenAI documents it: `tools` of type
"function" with JSON-schema parameters, the assistant's `tool_calls` (arguments a JSON string)
and one `role: "tool"` message per call, with its `tool_call_id`."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import command_pb2, status_pb2
from google.protobuf import duration_pb2
from temporalio.client import Client, WorkflowHandle

from tests.stigmer_service import caller
from tests.support import executions, model_server, tickets
from tests.support.model_server import ModelServer, answer
from tests.support.openai_wire import assistant_calls, functions, requests, served_by, tool_calls
from tests.support.service import Stubs

WAIT = 60
SECRET = "sekret-openai-4b7e"
LOOKUP = json.dumps(
    {"id": "T-1", "priority": "high", "status": "open", "title": "Checkout fails with a 502"},
    sort_keys=True,
)
# The one argument of every sub-agent's function, as the model is told it.
SUB_AGENT_PARAMETERS = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "description": "What to ask the sub-agent, in full."}
    },
    "required": ["message"],
}


@pytest.fixture
def fake() -> Iterator[ModelServer]:
    with model_server.serving() as server:
        yield server


@pytest_asyncio.fixture
async def served(
    fake: ModelServer, tmp_path: pathlib.Path, temporal_client: Client
) -> AsyncIterator[Stubs]:
    async with served_by(fake, tmp_path, temporal_client) as stubs:
        yield stubs


def call_input(
    stigmer: Stubs, agent_id: str, message: str, comments: pathlib.Path
) -> caller.CallInput:
    return caller.CallInput(
        stigmer.endpoint,
        agent_id,
        message,
        secrets={"API_TOKEN": SECRET},
        env=tickets.runtime_env(comments),
    )


def tool_message(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


async def test_a_sub_agent_and_two_tools_in_the_openai_wire_format(
    served: Stubs,
    fake: ModelServer,
    temporal_client: Client,
    caller_queue: str,
    tmp_path: pathlib.Path,
) -> None:
    stigmer, comments = served, tmp_path / "comments.jsonl"
    await stigmer.agent(
        "researcher",
        model="fake/tiny",
        instructions="You research tickets.",
        description="Finds out what is known about a ticket.",
    )
    lead = await stigmer.agent(
        "lead",
        model="fake/tiny",
        instructions="You triage tickets.",
        mcp_servers=[tickets.stdio_server(enabled_tools=["lookup_ticket", "add_comment"])],
        sub_agents=[agent_spec_pb2.SubAgent(name="researcher", agent="researcher")],
    )
    question = {"message": "What do we know about T-1?"}
    # The model copies the secret it never saw into an argument: masked before anyone gets it.
    comment = {"id": "T-1", "text": f"checkout bug, key {SECRET}"}
    fake.script = [
        # The lead's first turn calls a tool and the sub-agent at once (parallel tool calls).
        (
            200,
            tool_calls(
                ("call_lookup", "tickets__lookup_ticket", {"id": "T-1"}),
                ("call_research", "agents__researcher", question),
            ),
        ),
        (200, answer("T-1 is a checkout bug.")),  # the researcher's one model call
        (200, tool_calls(("call_comment", "tickets__add_comment", comment))),
        (200, answer("T-1 is a checkout bug; noted on the ticket.")),
    ]
    handle = await caller.start(
        temporal_client,
        caller_queue,
        call_input(stigmer, lead.metadata.id, "Triage T-1.", comments),
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"] == "T-1 is a checkout bug; noted on the ticket."

    sent = requests(fake)
    assert len(sent) == 4
    lead_first, researcher, lead_second, lead_last = sent
    system, user = (
        {"role": "system", "content": "You triage tickets."},
        {"role": "user", "content": "Triage T-1."},
    )
    assert lead_first["messages"] == [system, user]
    offered = functions(lead_first)
    assert set(offered) == {"tickets__lookup_ticket", "tickets__add_comment", "agents__researcher"}
    # The sub-agent is a function with one string argument, described as its agent is.
    assert offered["agents__researcher"] == {
        "name": "agents__researcher",
        "description": "Finds out what is known about a ticket.",
        "parameters": SUB_AGENT_PARAMETERS,
    }
    # An MCP tool's parameters are its server's JSON schema.
    lookup = offered["tickets__lookup_ticket"]["parameters"]
    assert lookup["type"] == "object" and lookup["required"] == ["id"]
    assert lookup["properties"]["id"]["type"] == "string"
    # The sub-agent ran on the same endpoint: its own instructions, the message the lead's
    # model wrote, and no tools (it has none).
    assert researcher["messages"] == [
        {"role": "system", "content": "You research tickets."},
        {"role": "user", "content": question["message"]},
    ]
    assert "tools" not in researcher
    # Each later turn carries the earlier ones: the assistant's calls, then one tool message per
    # call, in the order of the calls; the sub-agent's answer is its tool message.
    first_turn = lead_second["messages"][2:]
    assert first_turn[0]["content"] is None
    assert assistant_calls(first_turn[0]) == [
        ("call_lookup", "tickets__lookup_ticket", {"id": "T-1"}),
        ("call_research", "agents__researcher", question),
    ]
    assert first_turn[1:] == [
        tool_message("call_lookup", LOOKUP),
        tool_message("call_research", "T-1 is a checkout bug."),
    ]
    assert lead_last["messages"][: len(lead_second["messages"])] == lead_second["messages"]
    second_turn = lead_last["messages"][len(lead_second["messages"]) :]
    masked = {"id": "T-1", "text": "checkout bug, key ***"}
    assert assistant_calls(second_turn[0]) == [("call_comment", "tickets__add_comment", masked)]
    assert second_turn[1:] == [tool_message("call_comment", "comment added to T-1")]
    assert all(SECRET not in seen.body.decode() for seen in fake.seen)

    parent = await executions.ended(stigmer, result["execution_id"])
    assert [(s.index, s.kind, s.tool_server, s.tool_name) for s in parent.status.steps] == [
        (0, status_pb2.STEP_KIND_TOOL_CALL, "tickets", "lookup_ticket"),
        (1, status_pb2.STEP_KIND_SUB_AGENT, "agents", "researcher"),
        (2, status_pb2.STEP_KIND_TOOL_CALL, "tickets", "add_comment"),
        (3, status_pb2.STEP_KIND_ASSISTANT_MESSAGE, "", ""),
    ]
    assert json.loads(parent.status.steps[2].arguments_json) == masked
    child = await executions.ended(stigmer, parent.status.steps[1].sub_execution_id)
    assert child.status.parent_execution_id == parent.metadata.id
    assert child.status.output == "T-1 is a checkout bug."
    assert tickets.comments(comments) == [masked]
    assert SECRET not in str(parent) + str(child)


async def gated_comment(
    stigmer: Stubs,
    fake: ModelServer,
    client: Client,
    caller_queue: str,
    comments: pathlib.Path,
    final: str,
) -> tuple[WorkflowHandle[Any, Any], str]:
    """A call to an agent whose add_comment waits for a person; the fake calls it, then answers
    `final`. Returns the caller's handle and the execution once its call awaits approval."""
    desk = await stigmer.agent(
        "desk",
        model="fake/tiny",
        mcp_servers=[tickets.stdio_server()],
        tool_approval=agent_spec_pb2.ToolApproval(
            mode=agent_spec_pb2.TOOL_APPROVAL_MODE_LISTED,
            tools=["tickets.add_comment"],
            timeout=duration_pb2.Duration(seconds=120),
        ),
    )
    text = {"id": "T-1", "text": "refund approved"}
    fake.script = [
        (200, tool_calls(("call_comment", "tickets__add_comment", text))),
        (200, answer(final)),
    ]
    handle = await caller.start(
        client, caller_queue, call_input(stigmer, desk.metadata.id, "Note the refund.", comments)
    )
    execution = await asyncio.wait_for(caller.created.get(), WAIT)
    step = await executions.awaiting_approval(stigmer, execution.metadata.id, 0)
    assert json.loads(step.arguments_json) == text
    # While the call waits, the model is not asked again and the tool has not run.
    assert len(fake.seen) == 1 and tickets.comments(comments) == []
    return handle, execution.metadata.id


async def decide(stigmer: Stubs, execution_id: str, approve: bool, reason: str) -> None:
    await stigmer.executions.DecideToolCall(
        command_pb2.DecideToolCallRequest(
            id=execution_id, step_index=0, approve=approve, reason=reason
        )
    )


async def test_an_approved_call_runs_and_the_model_continues(
    served: Stubs,
    fake: ModelServer,
    temporal_client: Client,
    caller_queue: str,
    tmp_path: pathlib.Path,
) -> None:
    comments = tmp_path / "comments.jsonl"
    handle, execution_id = await gated_comment(
        served, fake, temporal_client, caller_queue, comments, "Noted on T-1."
    )
    await decide(served, execution_id, True, "customer verified")
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"] == "Noted on T-1."
    first, second = requests(fake)
    assert "tickets__add_comment" in functions(first)
    # The model heard the approved call's result, as the tool message of its call.
    assert second["messages"][:-2] == first["messages"]
    call, result_message = second["messages"][-2:]
    assert assistant_calls(call) == [
        ("call_comment", "tickets__add_comment", {"id": "T-1", "text": "refund approved"})
    ]
    assert result_message == tool_message("call_comment", "comment added to T-1")
    assert tickets.comments(comments) == [{"id": "T-1", "text": "refund approved"}]
    step = (await executions.ended(served, execution_id)).status.steps[0]
    assert step.approval.state == status_pb2.APPROVAL_STATE_APPROVED
    assert step.result == "comment added to T-1"


async def test_a_rejected_call_is_the_tool_message_the_model_hears(
    served: Stubs,
    fake: ModelServer,
    temporal_client: Client,
    caller_queue: str,
    tmp_path: pathlib.Path,
) -> None:
    comments = tmp_path / "comments.jsonl"
    handle, execution_id = await gated_comment(
        served, fake, temporal_client, caller_queue, comments, "I could not note it: rejected."
    )
    await decide(served, execution_id, False, "not this customer")
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"] == "I could not note it: rejected."
    first, second = requests(fake)
    assert second["messages"][:-2] == first["messages"]
    call, rejection = second["messages"][-2:]
    assert assistant_calls(call)[0][:2] == ("call_comment", "tickets__add_comment")
    # The call never ran: the rejection, with who decided and why, is the tool's result.
    assert rejection == tool_message(
        "call_comment", "error: the tool call was rejected by operator: not this customer"
    )
    assert tickets.comments(comments) == []
    step = (await executions.ended(served, execution_id)).status.steps[0]
    assert step.approval.state == status_pb2.APPROVAL_STATE_REJECTED
    assert step.error == "the tool call was rejected by operator: not this customer"
