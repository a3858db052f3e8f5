"""A lightweight fake agent side on a real gRPC server: records tokens, serves status, finishes.

Both designs talk to it, so a comparison of the two measures the worker, not an agent runtime.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2 as agent_query_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2_grpc as agent_query_pb2_grpc
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    command_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    status_pb2,
)
from ai.stigmer.commons.apiresource import metadata_pb2

from tests.support import fake_server

Context = grpc.aio.ServicerContext[Any, Any]


@dataclasses.dataclass
class FakeExecution:
    execution_id: str
    message: str
    token: bytes
    created_at: float  # time.time()
    finished_at: float | None = None
    output: str = ""


class FakeAgentSide(
    agent_query_pb2_grpc.AgentQueryServiceServicer,
    command_pb2_grpc.AgentExecutionCommandServiceServicer,
    query_pb2_grpc.AgentExecutionQueryServiceServicer,
):
    """Every agent exists; every execution runs until `finish` marks it completed."""

    def __init__(self) -> None:
        self.executions: dict[str, FakeExecution] = {}
        self._ids = itertools.count(1)
        # Called on every create (the latency and throughput runs finish calls from here).
        self.on_create: Callable[[FakeExecution], None] | None = None

    @property
    def open_count(self) -> int:
        """Agent calls in flight: created and not finished."""
        return sum(1 for e in self.executions.values() if e.finished_at is None)

    def finish(self, execution: FakeExecution, output: str = "done") -> None:
        execution.output = output
        execution.finished_at = time.time()

    async def GetAgentByReference(
        self, request: agent_query_pb2.GetAgentByReferenceRequest, context: Context
    ) -> agent_api_pb2.Agent:
        ref = request.ref
        return agent_api_pb2.Agent(
            metadata=metadata_pb2.ApiResourceMetadata(
                id=f"agt-{ref.slug}", slug=ref.slug, org=ref.org
            )
        )

    async def CreateAgentExecution(
        self, request: command_pb2.CreateAgentExecutionRequest, context: Context
    ) -> api_pb2.AgentExecution:
        spec = request.execution.spec
        execution = FakeExecution(
            f"exe-{next(self._ids)}", spec.message, spec.callback_token, time.time()
        )
        self.executions[execution.execution_id] = execution
        if self.on_create is not None:
            self.on_create(execution)
        return api_pb2.AgentExecution(
            metadata=metadata_pb2.ApiResourceMetadata(id=execution.execution_id)
        )

    async def GetAgentExecution(
        self, request: query_pb2.GetAgentExecutionRequest, context: Context
    ) -> api_pb2.AgentExecution:
        execution = self.executions.get(request.id)
        if execution is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no execution {request.id}")
        assert execution is not None
        reply = api_pb2.AgentExecution(metadata=metadata_pb2.ApiResourceMetadata(id=request.id))
        if execution.finished_at is None:
            reply.status.phase = status_pb2.EXECUTION_PHASE_RUNNING
        else:
            reply.status.phase = status_pb2.EXECUTION_PHASE_COMPLETED
            reply.status.output = execution.output
        return reply


@contextlib.asynccontextmanager
async def serve() -> AsyncIterator[tuple[FakeAgentSide, str]]:
    """The fake on a fresh loopback port; yields it and its endpoint."""
    # The RPCs it does not define answer UNIMPLEMENTED through the generated base classes.
    fake = FakeAgentSide()  # type: ignore[abstract]
    async with fake_server.serving(
        fake,
        agent_query_pb2_grpc.add_AgentQueryServiceServicer_to_server,
        command_pb2_grpc.add_AgentExecutionCommandServiceServicer_to_server,
        query_pb2_grpc.add_AgentExecutionQueryServiceServicer_to_server,
    ) as endpoint:
        yield fake, endpoint
