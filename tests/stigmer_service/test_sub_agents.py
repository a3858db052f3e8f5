"""Sub-agents on the dev server: a parent agent's delegation is an execution of its own, made
with the parent's tool activity's task token (the handshake of `call: agent`), so every edge of a
tree of agents ends exactly once, and cancelling the top cancels the tree."""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Any

import grpc
import pytest
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import status_pb2
from temporalio.client import Client, WorkflowFailureError

from tests.stigmer_service import caller
from tests.support import tickets
from tests.support.eventually import eventually
from tests.support.executions import ended, get
from tests.support.service import Stubs

WAIT = 60
SECRET = "sekret-51d0"
LOOKUP = '#tool=tickets.lookup_ticket:{"id": "T-1"}'
# The sub-agent's message, as the parent's model writes it: "\u0023" keeps the child's own
# directive out of the parent's message (the offline model reads directives anywhere in it).
ASK_RESEARCHER = '#tool=agents.researcher:{"message": "\\u0023reply=T-1 is a checkout bug"}'
COMMENT = '#tool=tickets.add_comment:{"id": "T-1", "text": "triaged, key {{secret:API_TOKEN}}"}'


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


def sub_agent(name: str, agent: str, description: str = "") -> agent_spec_pb2.SubAgent:
    return agent_spec_pb2.SubAgent(name=name, agent=agent, description=description)


async def test_two_tools_and_a_sub_agent_then_the_answer(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    comments = tmp_path / "comments.jsonl"
    await stigmer.agent("researcher", model="offline/echo", description="Finds out.")
    lead = await stigmer.agent(
        "lead",
        model="offline/echo",
        mcp_servers=[tickets.stdio_server()],
        sub_agents=[sub_agent("researcher", "researcher")],
    )
    message = "\n".join(["Triage T-1.", LOOKUP, ASK_RESEARCHER, COMMENT])
    handle = await caller.start(
        temporal_client, caller_queue, call_input(stigmer, lead.metadata.id, message, comments)
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    lookup = json.dumps(
        {"id": "T-1", "priority": "high", "status": "open", "title": "Checkout fails with a 502"},
        sort_keys=True,
    )
    # The offline model answers with the results it was given, in order: the sub-agent's answer
    # came back as a tool result.
    assert result["output"] == f"lead: {lookup} | T-1 is a checkout bug | comment added to T-1"
    parent = await ended(stigmer, result["execution_id"])
    status = parent.status
    assert status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    assert status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
    assert status.callback.attempts == 1
    assert [s.kind for s in status.steps] == [
        status_pb2.STEP_KIND_TOOL_CALL,
        status_pb2.STEP_KIND_SUB_AGENT,
        status_pb2.STEP_KIND_TOOL_CALL,
        status_pb2.STEP_KIND_ASSISTANT_MESSAGE,
    ]
    delegated = status.steps[1]
    assert (delegated.tool_server, delegated.tool_name) == ("agents", "researcher")
    assert json.loads(delegated.arguments_json) == {"message": "#reply=T-1 is a checkout bug"}
    assert delegated.result == "T-1 is a checkout bug" and not delegated.error
    assert delegated.HasField("duration") and delegated.sub_execution_id
    # The caller's payload summarises the same steps, the delegation with its child.
    assert [s["kind"] for s in result["steps"]] == [
        "tool_call",
        "sub_agent",
        "tool_call",
        "message",
    ]
    assert result["steps"][1]["tool"] == "agents.researcher"
    assert result["steps"][1]["sub_execution_id"] == delegated.sub_execution_id
    # Masked arguments in the parent's steps; the secret nowhere in what the API shows.
    assert json.loads(status.steps[2].arguments_json)["text"] == "triaged, key ***"
    assert SECRET not in str(parent)
    # Four model turns (three that call, one that answers), each counted; the offline model
    # counts words as tokens.
    assert status.usage.model_calls == 4
    assert status.usage.input_tokens > 0 and status.usage.output_tokens > 0
    # The child is an execution of its own, in the parent's org, that called back the parent's
    # delegate activity exactly once.
    child = await ended(stigmer, delegated.sub_execution_id)
    assert child.status.parent_execution_id == parent.metadata.id
    assert child.metadata.org == parent.metadata.org
    assert child.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    assert child.status.output == "T-1 is a checkout bug"
    assert child.status.usage.model_calls == 1
    assert child.status.usage.output_tokens == len("T-1 is a checkout bug".split())
    assert child.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
    assert child.status.callback.attempts == 1
    assert SECRET not in str(child)
    # The side effect of the tool after the delegation happened once.
    assert tickets.comments(comments) == [{"id": "T-1", "text": "triaged, key ***"}]
    # The parent's workflow held no slot while the child worked: the delegation is one activity
    # that the child completed (scheduled once, no retry).
    history = await temporal_client.get_workflow_handle(
        f"agent-execution-{parent.metadata.id}"
    ).fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled.count("delegate") == 1
    assert scheduled.count("delegation_ended") == 1


async def test_a_missing_sub_agent_is_a_tool_error_the_model_hears(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    lead = await stigmer.agent(
        "lead", model="offline/echo", sub_agents=[sub_agent("ghost", "nobody-here")]
    )
    message = '#tool=agents.ghost:{"message": "hello"}'
    handle = await caller.start(
        temporal_client,
        caller_queue,
        call_input(stigmer, lead.metadata.id, message, tmp_path / "c"),
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"] == "lead: error: sub-agent 'ghost': agent 'nobody-here' not found"
    parent = await ended(stigmer, result["execution_id"])
    step = parent.status.steps[0]
    assert step.kind == status_pb2.STEP_KIND_SUB_AGENT and not step.sub_execution_id


async def test_a_failed_sub_agent_is_heard_with_its_error_type(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    await stigmer.agent("flaky", model="offline/echo")
    lead = await stigmer.agent(
        "lead", model="offline/echo", sub_agents=[sub_agent("flaky", "flaky")]
    )
    message = '#tool=agents.flaky:{"message": "\\u0023fail=QuotaExceeded"}'
    handle = await caller.start(
        temporal_client,
        caller_queue,
        call_input(stigmer, lead.metadata.id, message, tmp_path / "c"),
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"].startswith("lead: error: the sub-agent failed (QuotaExceeded)")
    parent = await ended(stigmer, result["execution_id"])
    child = await ended(stigmer, parent.status.steps[0].sub_execution_id)
    assert child.status.phase == status_pb2.EXECUTION_PHASE_FAILED
    assert child.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
    assert child.status.callback.attempts == 1


async def test_cancelling_the_caller_cancels_the_agent_and_its_sub_agents(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    """lead -> middle -> leaf, the leaf waiting for a tool approval nobody gives: cancelling the
    calling workflow ends all three as cancelled, and each caller hears exactly once."""
    await stigmer.agent(
        "leaf",
        model="offline/echo",
        mcp_servers=[tickets.stdio_server()],
        tool_approval=agent_spec_pb2.ToolApproval(mode=agent_spec_pb2.TOOL_APPROVAL_MODE_ALL),
    )
    await stigmer.agent("middle", model="offline/echo", sub_agents=[sub_agent("leaf", "leaf")])
    lead = await stigmer.agent(
        "lead", model="offline/echo", sub_agents=[sub_agent("middle", "middle")]
    )
    # Each level's message scripts the next one's delegation (a directive counts only at the
    # start of a line, so the nested ones wait for their own level).
    leaf_message = '#tool=tickets.lookup_ticket:{"id": "T-1"}'
    middle_message = "#tool=agents.leaf:" + json.dumps({"message": leaf_message})
    message = "#tool=agents.middle:" + json.dumps({"message": middle_message})
    handle = await caller.start(
        temporal_client,
        caller_queue,
        call_input(stigmer, lead.metadata.id, message, tmp_path / "c"),
    )
    top = await asyncio.wait_for(caller.created.get(), WAIT)

    async def waiting_leaf() -> tuple[str, str]:
        parent = await get(stigmer, top.metadata.id)
        assert parent.status.steps and parent.status.steps[0].sub_execution_id
        middle_id = parent.status.steps[0].sub_execution_id
        middle = await get(stigmer, middle_id)
        assert middle.status.steps and middle.status.steps[0].sub_execution_id
        leaf_id = middle.status.steps[0].sub_execution_id
        leaf = await get(stigmer, leaf_id)
        assert leaf.status.steps
        assert leaf.status.steps[0].approval.state == status_pb2.APPROVAL_STATE_AWAITING
        return middle_id, leaf_id

    middle_id, leaf_id = await eventually(waiting_leaf, timeout=WAIT, every=0.2)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), WAIT)
    for execution_id in (top.metadata.id, middle_id, leaf_id):
        execution = await ended(stigmer, execution_id)
        assert execution.status.phase == status_pb2.EXECUTION_PHASE_CANCELLED, execution_id
        callback = execution.status.callback
        # Heard once: delivered, or found its caller already closed (a parent that ended first).
        assert callback.state in (
            status_pb2.CALLBACK_STATE_DELIVERED,
            status_pb2.CALLBACK_STATE_ALREADY_CLOSED,
        ), execution_id
        assert callback.attempts == 1, execution_id
    top_execution = await get(stigmer, top.metadata.id)
    assert top_execution.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"sub_agents": [sub_agent("Bad Name", "x")]}, "sub_agents[0].name"),
        ({"sub_agents": [sub_agent("a", "")]}, "sub_agents[0].agent"),
        ({"sub_agents": [sub_agent("a", "x"), sub_agent("a", "y")]}, "sub_agents[1].name"),
        (
            {"mcp_servers": [tickets.stdio_server("agents")]},
            "mcp_servers[0].name",
        ),
        (
            {
                "sub_agents": [sub_agent("a", "x")],
                "tool_approval": agent_spec_pb2.ToolApproval(
                    mode=agent_spec_pb2.TOOL_APPROVAL_MODE_LISTED, tools=["agents.b"]
                ),
            },
            "tool_approval.tools[0]",
        ),
    ],
)
async def test_invalid_sub_agents_name_the_field(
    stigmer: Stubs, spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stigmer.agent("bad", model="offline/echo", **spec)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"agent.spec.{field}" in (error.value.details() or "")
