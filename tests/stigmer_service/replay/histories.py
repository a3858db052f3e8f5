"""Runs each end of the service's workflows on a real service stack and keeps their histories.

Record the committed histories (into `histories/`, one `<name>.json` per recording) with

    PYTHONPATH=.:apis/stubs/python python -m tests.stigmer_service.replay.histories [NAME ...]

(only the named recordings when names are given, so that adding one leaves the others' files
as they are). It starts its own Temporal dev server and an in-process service. Re-record (and commit the JSON)
only when a change to a workflow is meant to change what it does: otherwise a change that breaks
the replay of a committed history is a determinism bug, which would break the runs in flight
when a new version is deployed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import pathlib
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import command_pb2, query_pb2, status_pb2
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory

from backend.common import temporal_dev_server
from backend.stigmer_service import app
from backend.stigmer_service.execution.callers import CallerHeartbeatWorkflow
from backend.stigmer_service.execution.models import CallerSweepInput
from backend.stigmer_service.execution.workflow_ids import callback_workflow_id, workflow_id
from backend.stigmer_service.execution.workflows import AgentExecutionWorkflow, CallbackWorkflow
from tests.stigmer_service import caller
from tests.support import tickets
from tests.support.eventually import eventually
from tests.support.service import Stubs, fast_settings, open_stubs

HISTORIES = pathlib.Path(__file__).parent / "histories"
WAIT = 30.0


@dataclasses.dataclass(frozen=True)
class Stack:
    """A running service, its Temporal client, and a worker for the fake caller."""

    stigmer: Stubs
    client: Client
    caller_queue: str


@dataclasses.dataclass(frozen=True)
class Recording:
    """One end of one workflow: how to bring it about, and what its history must show."""

    name: str
    workflow: str
    # The event that closes the recorded run: the end it stands for.
    last_event: EventType.ValueType
    # Runs the scenario on the stack; returns the run whose history is kept, once it has closed.
    run: Callable[[Stack, str], Awaitable[WorkflowHandle[Any, Any]]]


async def _call(
    stack: Stack, slug: str, message: str, spec: dict[str, Any] | None = None, **call: Any
) -> tuple[Any, str]:
    """The fake caller calls a fresh agent named `slug` (with `spec`'s fields); returns its
    handle and the execution's id."""
    agent = await stack.stigmer.agent(slug, **(spec or {}))
    handle = await stack.client.start_workflow(
        caller.CallerWorkflow.run,
        caller.CallInput(stack.stigmer.endpoint, agent.metadata.id, message, **call),
        id=f"caller-{slug}-{uuid.uuid4()}",
        task_queue=stack.caller_queue,
    )

    # By agent, not from the caller's queues, so that recordings can run side by side.
    async def created() -> str:
        listed = await stack.stigmer.queries.ListAgentExecutions(
            query_pb2.ListAgentExecutionsRequest(agent_id=agent.metadata.id)
        )
        assert listed.executions, f"{slug}: no execution yet"
        return listed.executions[0].metadata.id

    return handle, await eventually(created, timeout=WAIT, every=0.05)


async def _until(stack: Stack, execution_id: str, ready: Callable[[Any], bool]) -> Any:
    async def holds() -> Any:
        execution = await stack.stigmer.queries.GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=execution_id)
        )
        assert ready(execution), execution.status
        return execution

    return await eventually(holds, timeout=WAIT, every=0.05)


async def _closed(stack: Stack, workflow: str, caller_handle: Any) -> WorkflowHandle[Any, Any]:
    """Waits for the caller to get its answer (or error), then for the recorded run to close."""
    with contextlib.suppress(WorkflowFailureError):
        await caller_handle.result()
    handle = stack.client.get_workflow_handle(workflow)
    await handle.result()
    return handle


async def completed(stack: Stack, slug: str) -> WorkflowHandle[Any, Any]:
    handle, execution_id = await _call(stack, slug, "hello #reply=the answer")
    return await _closed(stack, workflow_id(execution_id), handle)


async def failed(stack: Stack, slug: str) -> WorkflowHandle[Any, Any]:
    handle, execution_id = await _call(stack, slug, "#fail=Boom")
    return await _closed(stack, workflow_id(execution_id), handle)


async def timed_out(stack: Stack, slug: str) -> WorkflowHandle[Any, Any]:
    handle, execution_id = await _call(stack, slug, "#sleep=30", timeout_seconds=1)
    return await _closed(stack, workflow_id(execution_id), handle)


async def _call_the_desk(
    stack: Stack, slug: str, lines: list[str], **spec: Any
) -> WorkflowHandle[Any, Any]:
    """An agent with the example ticket desk (a stdio MCP server) as its tools, scripted by the
    offline model's `#tool=` lines; the recorded run once it has closed."""
    with tempfile.TemporaryDirectory() as scratch:
        env = tickets.runtime_env(pathlib.Path(scratch) / "comments.jsonl")
        spec = {"mcp_servers": [tickets.stdio_server()], **spec}
        handle, execution_id = await _call(stack, slug, "\n".join(lines), spec, env=env)
        return await _closed(stack, workflow_id(execution_id), handle)


async def with_tools(stack: Stack, slug: str) -> WorkflowHandle[Any, Any]:
    """The loop: two model turns that call a tool each (two call_tool activities), then the
    turn that answers."""
    return await _call_the_desk(
        stack,
        slug,
        [
            '#tool=tickets.lookup_ticket:{"id": "T-1"}',
            '#tool=tickets.add_comment:{"id": "T-1", "text": "seen"}',
        ],
    )


async def max_steps_exhausted(stack: Stack, slug: str) -> WorkflowHandle[Any, Any]:
    """The loop runs out of its budget of two model turns, each calling a tool: the execution
    fails as MaxStepsExceeded (recorded by `finish`, delivered by `deliver_callback`)."""
    return await _call_the_desk(
        stack, slug, ['#tool=tickets.lookup_ticket:{"id": "T-1"}'] * 3, max_steps=2
    )


async def with_sub_agent(stack: Stack, slug: str) -> WorkflowHandle[Any, Any]:
    """The loop delegates to a sub-agent (the delegate activity, completed by the child's
    callback; then delegation_ended), then answers."""
    helper = await stack.stigmer.agent(f"{slug}-helper")
    spec = {"sub_agents": [agent_spec_pb2.SubAgent(name="helper", agent=helper.metadata.slug)]}
    message = '#tool=agents.helper:{"message": "\\u0023reply=done"}'
    handle, execution_id = await _call(stack, slug, message, spec)
    return await _closed(stack, workflow_id(execution_id), handle)


async def tool_approved(stack: Stack, slug: str) -> WorkflowHandle[Any, Any]:
    """A gated tool call waits (a timer and a signal, no activity), is approved through the
    API, runs, and the next turn answers."""
    with tempfile.TemporaryDirectory() as scratch:
        env = tickets.runtime_env(pathlib.Path(scratch) / "comments.jsonl")
        spec = {
            "mcp_servers": [tickets.stdio_server()],
            "tool_approval": agent_spec_pb2.ToolApproval(
                mode=agent_spec_pb2.TOOL_APPROVAL_MODE_ALL
            ),
        }
        message = '#tool=tickets.lookup_ticket:{"id": "T-1"}'
        handle, execution_id = await _call(stack, slug, message, spec, env=env)
        await _until(
            stack,
            execution_id,
            lambda e: bool(e.status.steps)
            and e.status.steps[0].approval.state == status_pb2.APPROVAL_STATE_AWAITING,
        )
        await stack.stigmer.executions.DecideToolCall(
            command_pb2.DecideToolCallRequest(id=execution_id, step_index=0, approve=True)
        )
        return await _closed(stack, workflow_id(execution_id), handle)


async def _running(stack: Stack, slug: str) -> tuple[Any, str]:
    handle, execution_id = await _call(stack, slug, "#sleep=30")
    await _until(
        stack, execution_id, lambda e: e.status.phase == status_pb2.EXECUTION_PHASE_RUNNING
    )
    return handle, execution_id


async def cancelled(stack: Stack, slug: str) -> WorkflowHandle[Any, Any]:
    """Through the API: the workflow gets the `cancel` signal."""
    handle, execution_id = await _running(stack, slug)
    await stack.stigmer.executions.CancelAgentExecution(
        command_pb2.CancelAgentExecutionRequest(id=execution_id, reason="recording")
    )
    return await _closed(stack, workflow_id(execution_id), handle)


async def cancelled_through_temporal(stack: Stack, slug: str) -> WorkflowHandle[Any, Any]:
    """The workflow itself is cancelled (an operator's `temporal workflow cancel`)."""
    handle, execution_id = await _running(stack, slug)
    await stack.client.get_workflow_handle(workflow_id(execution_id)).cancel()
    return await _closed(stack, workflow_id(execution_id), handle)


async def redelivered(stack: Stack, slug: str) -> WorkflowHandle[Any, Any]:
    """The caller's retry brings a new token after the execution ended (its first attempt
    crashed; the retry comes 3 s later, as in test_callbacks' "after-the-end" case): a
    CallbackWorkflow delivers the recorded end to the new token."""
    handle, execution_id = await _call(
        stack, slug, "#reply=again", max_attempts=2, first_attempt="crash", retry_interval=3.0
    )
    await handle.result()
    stored = await _until(
        stack,
        execution_id,
        lambda e: e.status.callback.state == status_pb2.CALLBACK_STATE_DELIVERED,
    )
    return await _closed(
        stack, callback_workflow_id(execution_id, stored.status.callback.token_hash), handle
    )


async def sweeper_continued_as_new(stack: Stack, slug: str) -> WorkflowHandle[Any, Any]:
    """A sweeper of its own (the service's runs 600 s per run) sweeps for one second, then
    continues as new; the first run is kept."""
    settings = stack.stigmer.service.settings
    handle = await stack.client.start_workflow(
        CallerHeartbeatWorkflow.run,
        CallerSweepInput(run_seconds=1.0, heartbeat_timeout=settings.activity_heartbeat_timeout),
        id=f"sweeper-{slug}-{uuid.uuid4()}",
        task_queue=settings.task_queue,
    )
    first = handle.result_run_id

    async def continued() -> None:
        assert (await handle.describe()).run_id != first, "the sweeper has not continued as new"

    try:
        await eventually(continued, timeout=WAIT)
    finally:
        await handle.terminate("recorded")
    return stack.client.get_workflow_handle(handle.id, run_id=first)


_EXECUTION = AgentExecutionWorkflow.__name__
_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
RECORDINGS = [
    Recording("execution_completed", _EXECUTION, _COMPLETED, completed),
    Recording("execution_failed", _EXECUTION, _COMPLETED, failed),
    Recording("execution_timed_out", _EXECUTION, _COMPLETED, timed_out),
    Recording("execution_cancelled", _EXECUTION, _COMPLETED, cancelled),
    # It records the cancel and delivers it: the run completes, it is not cancelled.
    Recording(
        "execution_cancelled_through_temporal", _EXECUTION, _COMPLETED, cancelled_through_temporal
    ),
    Recording("execution_with_tools", _EXECUTION, _COMPLETED, with_tools),
    Recording("execution_max_steps_exhausted", _EXECUTION, _COMPLETED, max_steps_exhausted),
    Recording("execution_with_sub_agent", _EXECUTION, _COMPLETED, with_sub_agent),
    Recording("execution_tool_approved", _EXECUTION, _COMPLETED, tool_approved),
    Recording("callback_redelivered", CallbackWorkflow.__name__, _COMPLETED, redelivered),
    Recording(
        "sweeper_continued_as_new",
        CallerHeartbeatWorkflow.__name__,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
        sweeper_continued_as_new,
    ),
]


def workflow_type(history: WorkflowHistory) -> str:
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


async def record_all(stack: Stack, names: set[str] | None = None) -> dict[str, WorkflowHistory]:
    """Runs every recording (or those `names`) side by side, each with its own agent; their
    histories by name."""
    chosen = [r for r in RECORDINGS if names is None or r.name in names]

    async def one(recording: Recording) -> WorkflowHistory:
        handle = await asyncio.wait_for(
            recording.run(stack, recording.name.replace("_", "-")), WAIT
        )
        history = await handle.fetch_history()
        assert workflow_type(history) == recording.workflow, recording.name
        assert history.events[-1].event_type == recording.last_event, recording.name
        return history

    histories = await asyncio.gather(*(one(recording) for recording in chosen))
    return {r.name: history for r, history in zip(chosen, histories, strict=True)}


def to_json(history: WorkflowHistory) -> str:
    return json.dumps(json.loads(history.to_json()), indent=1) + "\n"


async def main(names: set[str] | None) -> None:
    unknown = (names or set()) - {r.name for r in RECORDINGS}
    if unknown:
        raise SystemExit(f"no recording named {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory() as scratch:
        server = await temporal_dev_server.start(log_path=pathlib.Path(scratch) / "temporal.log")
        try:
            client = await Client.connect(server.address)
            settings = fast_settings(pathlib.Path(scratch))
            async with (
                app.running(settings, client=client) as service,
                caller.running(client) as queue,
            ):
                stigmer = await open_stubs(service)
                try:
                    histories = await record_all(Stack(stigmer, client, queue), names)
                finally:
                    await stigmer.channel.close()
        finally:
            server.stop()
    for name, history in histories.items():
        path = HISTORIES / f"{name}.json"
        path.write_text(to_json(history))
        print(path)


if __name__ == "__main__":
    asyncio.run(main(set(sys.argv[1:]) or None))
