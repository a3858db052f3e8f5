"""Watches are pushed (SQLite, one process): a step's write reaches the watch at once, a tool-using
execution's steps each arrive as they are recorded with the safety poll a minute away, and the
CLI's `watch`, run as a process, prints each step as it arrives."""

from __future__ import annotations

import asyncio
import datetime
import pathlib
import re
import sys
from collections.abc import AsyncIterator

import pytest_asyncio
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    query_pb2,
    spec_pb2,
)
from google.protobuf import duration_pb2
from temporalio.client import Client

from backend.stigmer_service import app
from backend.stigmer_service.store.records import (
    APPROVAL_APPROVED,
    APPROVAL_AWAITING,
    STEP_TOOL_CALL,
    StepDecision,
    StepRecord,
)
from tests.stigmer_service import pushed
from tests.support.agents import OFFLINE_MODEL
from tests.support.eventually import eventually
from tests.support.processes import child_env
from tests.support.service import Stubs, fast_settings, open_stubs, serving

WAIT = 60


@pytest_asyncio.fixture
async def pushing(tmp_path: pathlib.Path, temporal_client: Client) -> AsyncIterator[Stubs]:
    """The service with its worker, its watches' safety poll a minute away."""
    settings = fast_settings(tmp_path, watch_poll_interval=pushed.NO_POLL)
    async with serving(settings, temporal_client) as stubs:
        yield stubs


@pytest_asyncio.fixture
async def idle(tmp_path: pathlib.Path, temporal_client: Client) -> AsyncIterator[Stubs]:
    """No worker: an execution stays PENDING, changed only by what the test writes."""
    settings = fast_settings(tmp_path, watch_poll_interval=pushed.NO_POLL)
    async with app.running(settings, client=temporal_client, run_worker=False) as service:
        stubs = await open_stubs(service)
        try:
            yield stubs
        finally:
            await stubs.channel.close()


async def test_step_writes_reach_the_watch_at_once(idle: Stubs) -> None:
    store = idle.service.store
    agent = await idle.agent("echo", model=OFFLINE_MODEL)
    created = await idle.executions.CreateAgentExecution(
        command_pb2.CreateAgentExecutionRequest(
            execution=api_pb2.AgentExecution(
                spec=spec_pb2.AgentExecutionSpec(agent_id=agent.metadata.id, message="hi")
            )
        )
    )
    execution_id = created.metadata.id
    watch = idle.queries.WatchAgentExecution(query_pb2.WatchAgentExecutionRequest(id=execution_id))

    async def next_with(check: str) -> api_pb2.AgentExecution:
        while True:
            state = await pushed.read(watch, pushed.PUSH_BOUND)
            if check in str(state.status.steps):
                return state

    assert not (await pushed.read(watch)).status.steps
    call = StepRecord(
        0,
        STEP_TOOL_CALL,
        datetime.datetime.now(datetime.UTC),
        tool_server="t",
        tool_name="x",
        arguments="{}",
        approval=APPROVAL_AWAITING,
    )
    await store.record_step(execution_id, call)
    await next_with('tool_name: "x"')
    assert await store.decide_step(execution_id, StepDecision(0, APPROVAL_APPROVED, "ann", "ok"))
    decided = await next_with('decided_by: "ann"')
    assert decided.status.steps[0].approval.reason == "ok"
    # A decision that finds nothing to decide writes nothing: no new version, no new state.
    version = await store.execution_version(execution_id)
    assert not await store.decide_step(execution_id, StepDecision(0, APPROVAL_APPROVED, "bo", ""))
    assert await store.execution_version(execution_id) == version
    watch.cancel()


async def test_each_step_is_pushed_as_it_is_recorded(
    pushing: Stubs, tmp_path: pathlib.Path
) -> None:
    agent_id = await pushed.desk(pushing)
    execution_id = await pushed.start(pushing, agent_id, tmp_path / "comments.jsonl")
    arrivals = await asyncio.wait_for(pushed.follow(pushing, execution_id), WAIT)
    pushed.assert_pushed(arrivals)
    # Get has the same steps as the watch's last state.
    got = await pushing.queries.GetAgentExecution(
        query_pb2.GetAgentExecutionRequest(id=execution_id)
    )
    assert got.status.steps == arrivals[-1].execution.status.steps
    assert pushing.service.store.changes.published > 0


async def test_the_cli_watch_prints_each_step_as_it_arrives(
    pushing: Stubs, tmp_path: pathlib.Path
) -> None:
    gate = agent_spec_pb2.ToolApproval(
        mode=agent_spec_pb2.TOOL_APPROVAL_MODE_LISTED,
        tools=["tickets.add_comment"],
        timeout=duration_pb2.Duration(seconds=120),
    )
    agent_id = await pushed.desk(pushing, tool_approval=gate)
    execution_id = await pushed.start(pushing, agent_id, tmp_path / "comments.jsonl")
    watch = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "backend.stigmer_service.main",
        "watch",
        execution_id,
        "--endpoint",
        pushing.endpoint,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert watch.stdout is not None
    lines: list[str] = []

    async def read() -> None:
        assert watch.stdout is not None
        async for raw in watch.stdout:
            lines.append(raw.decode().rstrip("\n"))

    reader = asyncio.ensure_future(read())
    try:

        async def awaiting() -> None:
            assert any("(awaiting approval)" in line for line in lines), lines

        await eventually(awaiting, timeout=WAIT)
        await pushing.executions.DecideToolCall(
            command_pb2.DecideToolCallRequest(
                id=execution_id, step_index=1, approve=True, reason="checked"
            )
        )
        await asyncio.wait_for(watch.wait(), WAIT)
        await reader
    finally:
        if watch.returncode is None:
            watch.kill()
            await watch.wait()
        reader.cancel()
    assert watch.returncode == 0, lines
    steps = [line for line in lines if line.startswith("step ")]
    expected = [
        r'step  0 tool    tickets\.lookup_ticket \{"id": "T-1"\} \(running\)',
        r'step  0 tool    tickets\.lookup_ticket \{"id": "T-1"\} -> \{"id": "T-1", .*\(\d+\.\d\ds\)',
        r'step  1 tool    tickets\.add_comment \{"id": "T-1", "text": "seen"\} \(awaiting approval\)',
        r'step  1 tool    tickets\.add_comment \{"id": "T-1", "text": "seen"\} '
        r"\(running\) \[approved by operator: checked\]",
        r'step  1 tool    tickets\.add_comment \{"id": "T-1", "text": "seen"\} '
        r"-> comment added to T-1 \[approved by operator: checked\] \(\d+\.\d\ds\)",
        r"step  2 message desk: .* \(\d+\.\d\ds\)",
    ]
    # Each change of a step is a line of its own, in order; a state the watch read after two
    # quick writes may show only the second (the running line of an approved call, say).
    position = 0
    for pattern in expected:
        found = [i for i, line in enumerate(steps) if re.fullmatch(pattern, line)]
        if "(running) [approved" in pattern and not found:
            continue
        assert found and found[0] >= position, (pattern, steps)
        position = found[0]
    assert lines[0] == "[user] " + pushed.MESSAGE.splitlines()[0]
    assert lines[-1] == "phase: COMPLETED"
