"""Tool calls that wait for a person's approval, on the dev server: the wait holds no activity,
DecideToolCall (and the CLI's approve/reject) resumes it, a timeout rejects or fails as the agent
says, and another org cannot decide."""

from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Any

import grpc
import pytest
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    query_pb2,
    spec_pb2,
    status_pb2,
)
from ai.stigmer.commons.apiresource import metadata_pb2
from google.protobuf import duration_pb2
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from typer.testing import CliRunner

from backend.common import contract
from backend.stigmer_service.cli import app as cli_app
from examples.mcp import tickets_server
from tests.stigmer_service import caller
from tests.stigmer_service.test_agent_loop import PYTHONPATH, call, settled, tickets
from tests.support.agents import agent as agent_resource
from tests.support.eventually import eventually
from tests.support.service import Stubs
from tests.support.tenants import A_RUNNER, A_USER, B_USER, bearer, code_of

WAIT = 60
COMMENT = '#tool=tickets.add_comment:{"id": "T-1", "text": "refund approved"}'
LISTED = agent_spec_pb2.TOOL_APPROVAL_MODE_LISTED
FAIL = agent_spec_pb2.APPROVAL_TIMEOUT_ACTION_FAIL
REJECT = agent_spec_pb2.APPROVAL_TIMEOUT_ACTION_REJECT


def gated(timeout: float = 120, on_timeout: int = REJECT) -> agent_spec_pb2.ToolApproval:
    """Only add_comment (the call with a side effect) waits; lookup_ticket does not."""
    return agent_spec_pb2.ToolApproval(
        mode=LISTED,
        tools=["tickets.add_comment"],
        timeout=duration_pb2.Duration(seconds=int(timeout)),
        on_timeout=on_timeout,  # type: ignore[arg-type]
    )


async def desk(stigmer: Stubs, approval: agent_spec_pb2.ToolApproval) -> agent_api_pb2.Agent:
    return await stigmer.agent(
        "desk", model="offline/echo", mcp_servers=[tickets()], tool_approval=approval
    )


async def awaiting(
    stigmer: Stubs, execution_id: str, index: int, **metadata: Any
) -> status_pb2.AgentStep:
    """The step at `index` once it awaits approval."""

    async def found() -> status_pb2.AgentStep:
        execution = await stigmer.queries.GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=execution_id), **metadata
        )
        steps = [s for s in execution.status.steps if s.index == index]
        assert steps, f"no step {index} yet"
        step = steps[0]
        assert step.approval.state == status_pb2.APPROVAL_STATE_AWAITING
        return step

    return await eventually(found, timeout=WAIT, every=0.1)


async def execution_id_of(stigmer: Stubs) -> str:
    async def only() -> str:
        listed = await stigmer.queries.ListAgentExecutions(query_pb2.ListAgentExecutionsRequest())
        assert len(listed.executions) == 1
        return str(listed.executions[0].metadata.id)

    return await eventually(only, timeout=WAIT, every=0.1)


async def no_activity_runs(client: Client, execution_id: str) -> None:
    """The execution's workflow waits on a timer and a signal only: no activity (slot)."""
    described = await client.get_workflow_handle(f"agent-execution-{execution_id}").describe()
    assert list(described.raw_description.pending_activities) == []


def comments_in(path: pathlib.Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_an_approved_call_runs_and_the_caller_gets_the_answer(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    comments = tmp_path / "comments.jsonl"
    agent = await desk(stigmer, gated())
    message = '#tool=tickets.lookup_ticket:{"id": "T-1"}\n' + COMMENT
    handle = await caller.start(
        temporal_client, caller_queue, call(stigmer, agent, message, comments)
    )
    execution_id = await execution_id_of(stigmer)
    # The ungated lookup ran; the comment waits, and nothing runs meanwhile.
    step = await awaiting(stigmer, execution_id, 1)
    assert (step.tool_server, step.tool_name) == ("tickets", "add_comment")
    await no_activity_runs(temporal_client, execution_id)
    assert comments_in(comments) == []
    decided = await stigmer.executions.DecideToolCall(
        command_pb2.DecideToolCallRequest(
            id=execution_id, step_index=1, approve=True, reason="customer verified"
        )
    )
    assert decided.status.steps[1].approval.state == status_pb2.APPROVAL_STATE_APPROVED
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"].endswith("| comment added to T-1")
    assert comments_in(comments) == [{"id": "T-1", "text": "refund approved"}]
    execution = await settled(stigmer, execution_id)
    first, second = execution.status.steps[:2]
    assert first.approval.state == status_pb2.APPROVAL_STATE_UNSPECIFIED
    assert second.approval.state == status_pb2.APPROVAL_STATE_APPROVED
    assert (second.approval.decided_by, second.approval.reason) == ("operator", "customer verified")
    assert second.approval.HasField("decided_at")
    assert second.result == "comment added to T-1"
    # Decided once: a second decision finds no call awaiting one.
    again = stigmer.executions.DecideToolCall(
        command_pb2.DecideToolCallRequest(id=execution_id, step_index=1, approve=False)
    )
    assert await code_of(again) == grpc.StatusCode.FAILED_PRECONDITION


async def test_approved_from_the_cli(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    comments = tmp_path / "comments.jsonl"
    agent = await desk(stigmer, gated())
    handle = await caller.start(
        temporal_client, caller_queue, call(stigmer, agent, COMMENT, comments)
    )
    execution_id = await execution_id_of(stigmer)
    await awaiting(stigmer, execution_id, 0)
    shown = await asyncio.to_thread(
        CliRunner().invoke,
        cli_app,
        ["get", "execution", execution_id, "--endpoint", stigmer.endpoint],
    )
    assert "(awaiting approval)" in shown.output
    approved = await asyncio.to_thread(
        CliRunner().invoke,
        cli_app,
        ["approve", execution_id, "0", "--reason", "ok", "--endpoint", stigmer.endpoint],
    )
    assert approved.exit_code == 0, approved.output
    assert "[approved by operator: ok]" in approved.output
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"] == "desk: comment added to T-1"
    assert len(comments_in(comments)) == 1
    # Nothing awaits any more: the CLI says so, as one error line.
    late = await asyncio.to_thread(
        CliRunner().invoke, cli_app, ["reject", execution_id, "0", "--endpoint", stigmer.endpoint]
    )
    assert late.exit_code == 1 and "FAILED_PRECONDITION" in late.output


async def test_a_rejected_call_lets_the_model_continue(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    comments = tmp_path / "comments.jsonl"
    agent = await desk(stigmer, gated())
    handle = await caller.start(
        temporal_client, caller_queue, call(stigmer, agent, COMMENT, comments)
    )
    execution_id = await execution_id_of(stigmer)
    await awaiting(stigmer, execution_id, 0)
    await stigmer.executions.DecideToolCall(
        command_pb2.DecideToolCallRequest(
            id=execution_id, step_index=0, approve=False, reason="no refunds today"
        )
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    # The model heard the rejection, with the reason, as the tool's result, and answered.
    rejection = "the tool call was rejected by operator: no refunds today"
    assert result["output"] == f"desk: error: {rejection}"
    assert comments_in(comments) == []
    step = (await settled(stigmer, execution_id)).status.steps[0]
    assert step.approval.state == status_pb2.APPROVAL_STATE_REJECTED
    assert (step.approval.decided_by, step.approval.reason) == ("operator", "no refunds today")
    assert step.error == rejection and not step.result


async def test_a_timeout_rejects_the_call(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    comments = tmp_path / "comments.jsonl"
    agent = await desk(stigmer, gated(timeout=1))
    handle = await caller.start(
        temporal_client, caller_queue, call(stigmer, agent, COMMENT, comments)
    )
    result = await asyncio.wait_for(handle.result(), WAIT)
    assert result["output"] == "desk: error: the tool call was not approved within 1s"
    assert comments_in(comments) == []
    step = (await settled(stigmer, result["execution_id"])).status.steps[0]
    assert step.approval.state == status_pb2.APPROVAL_STATE_TIMED_OUT


async def test_a_timeout_fails_the_execution_as_configured(
    stigmer: Stubs, temporal_client: Client, caller_queue: str, tmp_path: pathlib.Path
) -> None:
    comments = tmp_path / "comments.jsonl"
    agent = await desk(stigmer, gated(timeout=1, on_timeout=FAIL))
    handle = await caller.start(
        temporal_client, caller_queue, call(stigmer, agent, COMMENT, comments)
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), WAIT)
    assert isinstance(failure.value.cause, ActivityError)
    cause = failure.value.cause.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.non_retryable) == (contract.TOOL_APPROVAL_TIMED_OUT, True)
    execution = await settled(stigmer, cause.details[0]["execution_id"])
    assert execution.status.phase == status_pb2.EXECUTION_PHASE_FAILED
    assert execution.status.error.type == contract.TOOL_APPROVAL_TIMED_OUT
    # Heard exactly once.
    assert execution.status.callback.attempts == 1
    assert execution.status.steps[0].approval.state == status_pb2.APPROVAL_STATE_TIMED_OUT
    assert comments_in(comments) == []


async def test_approval_is_validated(stigmer: Stubs) -> None:
    bad = [
        (agent_spec_pb2.ToolApproval(mode=LISTED), "tool_approval.tools"),
        (agent_spec_pb2.ToolApproval(mode=LISTED, tools=["other.x"]), "tool_approval.tools[0]"),
        (
            agent_spec_pb2.ToolApproval(
                mode=LISTED, tools=["tickets.add_comment"], timeout=duration_pb2.Duration()
            ),
            "tool_approval.timeout",
        ),
    ]
    for approval, field in bad:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await desk(stigmer, approval)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"agent.spec.{field}" in (error.value.details() or "")


async def test_only_the_executions_org_may_decide_and_no_runner(
    scoped: Stubs, tmp_path: pathlib.Path
) -> None:
    mine = bearer(A_USER)
    agent = await scoped.agents.ApplyAgent(
        agent_command_pb2.ApplyAgentRequest(
            agent=agent_resource(
                "desk",
                "acme",
                model="offline/echo",
                mcp_servers=[tickets()],
                tool_approval=gated(),
            )
        ),
        metadata=mine,
    )
    env = {"PYTHONPATH": PYTHONPATH, tickets_server.COMMENTS_FILE_ENV: str(tmp_path / "c.jsonl")}
    created = await scoped.executions.CreateAgentExecution(
        command_pb2.CreateAgentExecutionRequest(
            execution=api_pb2.AgentExecution(
                metadata=metadata_pb2.ApiResourceMetadata(org="acme"),
                spec=spec_pb2.AgentExecutionSpec(
                    agent_id=agent.metadata.id,
                    message=COMMENT,
                    runtime_env={k: spec_pb2.ExecutionValue(value=v) for k, v in env.items()},
                ),
            )
        ),
        metadata=mine,
    )
    execution_id = created.metadata.id
    await awaiting(scoped, execution_id, 0, metadata=mine)
    decide = command_pb2.DecideToolCallRequest(id=execution_id, step_index=0, approve=True)
    commands = scoped.executions
    assert (
        await code_of(commands.DecideToolCall(decide, metadata=bearer(B_USER)))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        await code_of(commands.DecideToolCall(decide, metadata=bearer(A_RUNNER)))
        == grpc.StatusCode.PERMISSION_DENIED
    )
    # Still awaiting: neither refused call decided anything.
    await awaiting(scoped, execution_id, 0, metadata=mine)
    decided = await commands.DecideToolCall(decide, metadata=mine)
    assert decided.status.steps[0].approval.decided_by == "a-user"

    async def completed() -> None:
        execution = await scoped.queries.GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=execution_id), metadata=mine
        )
        assert execution.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED

    await eventually(completed, timeout=WAIT, every=0.1)
