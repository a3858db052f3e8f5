"""kill -9 of the service mid-loop, between a tool call's completion and the next model call:
the run resumes at the model turn it was in, the caller hears the answer once, and the tool,
whose side effect is counted in the ticket desk's comments file, is never run again."""

from __future__ import annotations

import pathlib
from typing import Any

import grpc
import pytest
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_pb2_grpc
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, query_pb2, query_pb2_grpc, status_pb2
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client

from backend.stigmer_service.execution.workflow_ids import workflow_id
from backend.workflow_runner.models import DslRunInput
from tests.support import documents, tickets
from tests.support.agents import OFFLINE_MODEL, ORG, agent
from tests.support.eventually import eventually
from tests.support.stack import Stack
from tests.system import flows

pytestmark = pytest.mark.timeout(300)
DESK = "ticket-desk"
# Every model turn of this message sleeps this long (the offline model's directives hold for
# every turn): the window in which the test kills the service while the turn after the tool
# call runs. Long enough for the test to see the tool's step and strike; the turn heartbeats.
TURN_SECONDS = 6
MESSAGE = "\n".join(
    [
        "Note that T-1 was seen.",
        f"#sleep={TURN_SECONDS}",
        '#tool=tickets.add_comment:{"id": "T-1", "text": "seen"}',
    ]
)
WAIT = 120.0


async def _apply_desk(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        await agent_command_pb2_grpc.AgentCommandServiceStub(channel).ApplyAgent(
            agent_command_pb2.ApplyAgentRequest(
                agent=agent(
                    DESK,
                    ORG,
                    instructions="Comment on tickets.",
                    model=OFFLINE_MODEL,
                    mcp_servers=[tickets.stdio_server()],
                )
            ),
            timeout=10,
        )


def _document(comments: pathlib.Path) -> dict[str, Any]:
    """The one-call document, its call giving the desk's stdio server the env it needs; its
    output carries the call's step summary."""
    document = documents.one_call(DESK, ORG, MESSAGE, namespace="system", carry="steps: .steps, ")
    document["do"][0]["ask"]["with"]["env"] = tickets.runtime_env(comments)
    return document


async def _get(address: str, execution_id: str) -> api_pb2.AgentExecution:
    async with grpc.aio.insecure_channel(address) as channel:
        return await query_pb2_grpc.AgentExecutionQueryServiceStub(channel).GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=execution_id), timeout=10
        )


async def _between_tool_and_next_turn(stack: Stack, client: Client) -> api_pb2.AgentExecution:
    """Waits until the tool call's step has its result and the next model turn is running."""

    async def there() -> api_pb2.AgentExecution:
        executions = await flows.list_executions(stack.service_address)
        assert len(executions) == 1, "no execution yet"
        execution = await _get(stack.service_address, executions[0].metadata.id)
        steps = execution.status.steps
        assert steps and steps[0].HasField("duration"), "the tool call has not completed"
        description = await client.get_workflow_handle(
            workflow_id(execution.metadata.id)
        ).describe()
        running = [
            a.activity_type.name
            for a in description.raw_description.pending_activities
            if a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        ]
        assert running == ["model_turn"], f"running: {running}"
        return execution

    return await eventually(there, timeout=WAIT, every=0.1)


async def test_kill_9_between_a_tool_call_and_the_next_model_turn(stack: Stack) -> None:
    comments = stack.state_dir / "comments.jsonl"
    await _apply_desk(stack.service_address)
    client = await Client.connect(stack.temporal.address)
    handle = await client.start_workflow(
        "DslWorkflow",
        DslRunInput(_document(comments), {}),
        id=f"loop-crash-{stack.worker_task_queue}",
        task_queue=stack.worker_task_queue,
    )

    before = await _between_tool_and_next_turn(stack, client)
    stack.service.kill()
    # Struck in the window: the tool ran once and the model has not answered yet.
    assert [s.kind for s in before.status.steps] == [status_pb2.STEP_KIND_TOOL_CALL]
    assert before.status.phase == status_pb2.EXECUTION_PHASE_RUNNING
    assert tickets.comments(comments) == [{"id": "T-1", "text": "seen"}]
    await stack.start_service()

    [output] = await flows.results([handle], timeout=WAIT)
    execution_id = before.metadata.id
    # The offline model answers with the results of the tool calls it saw.
    assert output.pop("answer") == f"{DESK}: comment added to T-1"
    assert output.pop("execution") == execution_id
    # The call's output summarises the steps in order, as recorded before and after the kill:
    # no arguments or results, a duration each (the turn after the tool call slept).
    steps = output.pop("steps")
    assert output == {}
    durations = [step.pop("duration_ms") for step in steps]
    assert steps == [
        {"index": 0, "kind": "tool_call", "tool": "tickets.add_comment", "error": False},
        {"index": 1, "kind": "message", "error": False},
    ]
    assert all(isinstance(ms, int) for ms in durations)
    assert durations[1] >= TURN_SECONDS * 1000
    # Exactly once: the comment was not written again by a resumed loop.
    assert tickets.comments(comments) == [{"id": "T-1", "text": "seen"}]

    async def delivered() -> api_pb2.AgentExecution:
        execution = await _get(stack.service_address, execution_id)
        assert execution.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED
        return execution

    after = await eventually(delivered, timeout=WAIT)
    assert after.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    assert after.status.callback.attempts == 1
    assert [(s.index, s.kind) for s in after.status.steps] == [
        (0, status_pb2.STEP_KIND_TOOL_CALL),
        (1, status_pb2.STEP_KIND_ASSISTANT_MESSAGE),
    ]
    assert after.status.steps[0].result == "comment added to T-1"

    # The history: one tool call activity, and the turn after it started again after the kill.
    history = await client.get_workflow_handle(workflow_id(execution_id)).fetch_history()
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    assert list(scheduled.values()).count("call_tool") == 1
    assert list(scheduled.values()).count("model_turn") == 2
    turn_attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and scheduled[e.activity_task_started_event_attributes.scheduled_event_id] == "model_turn"
    ]
    assert turn_attempts[0] == 1 and turn_attempts[1] >= 2, turn_attempts
