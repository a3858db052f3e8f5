"""What the watch-push tests share: a tool-using execution spaced out in time, a watch recorded
with the time each state arrived, and the checks that each step was pushed as it was recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import pathlib
from typing import Any

from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    query_pb2,
    spec_pb2,
    status_pb2,
)

from tests.support import tickets
from tests.support.service import Stubs

# A watch that only the safety poll could feed would wait this long: push alone explains updates.
NO_POLL = 60.0
# How late a pushed step may arrive, loosely (it takes milliseconds).
PUSH_BOUND = 2.0
# Each model turn sleeps this long first, so the steps are recorded apart from one another.
MESSAGE = "\n".join(
    [
        "Look at T-1 and note it.",
        "#sleep=0.4",
        '#tool=tickets.lookup_ticket:{"id": "T-1"}',
        '#tool=tickets.add_comment:{"id": "T-1", "text": "seen"}',
    ]
)


@dataclasses.dataclass
class Arrival:
    at: datetime.datetime
    execution: api_pb2.AgentExecution


async def desk(stubs: Stubs, **spec: Any) -> str:
    agent = await stubs.agent(
        "desk", model="offline/echo", mcp_servers=[tickets.stdio_server()], **spec
    )
    return agent.metadata.id


async def start(stubs: Stubs, agent_id: str, comments: pathlib.Path, message: str = MESSAGE) -> str:
    created = await stubs.executions.CreateAgentExecution(
        command_pb2.CreateAgentExecutionRequest(
            execution=api_pb2.AgentExecution(
                spec=spec_pb2.AgentExecutionSpec(
                    agent_id=agent_id,
                    message=message,
                    runtime_env={
                        name: spec_pb2.ExecutionValue(value=value)
                        for name, value in tickets.runtime_env(comments).items()
                    },
                )
            )
        )
    )
    return created.metadata.id


async def follow(stubs: Stubs, execution_id: str) -> list[Arrival]:
    """Every state the watch sends until the end, each with the time it arrived."""
    stream = stubs.queries.WatchAgentExecution(
        query_pb2.WatchAgentExecutionRequest(id=execution_id)
    )
    return [Arrival(_now(), execution) async for execution in stream]


async def read(stream: Any, timeout: float = NO_POLL) -> api_pb2.AgentExecution:
    """The next state a watch stream sends, within `timeout` seconds."""
    state = await asyncio.wait_for(stream.read(), timeout)
    assert isinstance(state, api_pb2.AgentExecution), state  # Not the end of the stream.
    return state


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _position(arrivals: list[Arrival], index: int, *, done: bool) -> int:
    """Where step `index` first arrived (`done`: with its result, i.e. a duration)."""
    for position, arrival in enumerate(arrivals):
        for step in arrival.execution.status.steps:
            if step.index == index and (step.HasField("duration") or not done):
                return position
    raise AssertionError(f"step {index} never arrived (done={done})")


def assert_pushed(arrivals: list[Arrival]) -> None:
    """Each tool call arrived running, then done, in a state of its own, in order, before the
    end; each step's final record arrived within PUSH_BOUND of being written."""
    final = arrivals[-1].execution.status
    assert final.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    end = next(
        i
        for i, a in enumerate(arrivals)
        if a.execution.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    )
    assert end == len(arrivals) - 1
    kinds = [s.kind for s in final.steps]
    assert kinds == [
        status_pb2.STEP_KIND_TOOL_CALL,
        status_pb2.STEP_KIND_TOOL_CALL,
        status_pb2.STEP_KIND_ASSISTANT_MESSAGE,
    ]
    done = [_position(arrivals, s.index, done=True) for s in final.steps]
    for step in final.steps[:2]:
        running = _position(arrivals, step.index, done=False)
        assert running < done[step.index] < end, (step.index, running, done, end)
    assert done[0] < done[1] < done[2] <= end, done
    for step, position in zip(final.steps, done, strict=True):
        recorded = step.started_at.ToDatetime(datetime.UTC) + step.duration.ToTimedelta()
        late = (arrivals[position].at - recorded).total_seconds()
        assert late < PUSH_BOUND, f"step {step.index} arrived {late:.2f}s after it was recorded"
