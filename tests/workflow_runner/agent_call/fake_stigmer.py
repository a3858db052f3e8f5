"""A recording fake of the Stigmer services the agent-call activity calls, on a real gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2 as agent_query_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2_grpc as agent_query_pb2_grpc
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, command_pb2, command_pb2_grpc
from ai.stigmer.commons.apiresource import metadata_pb2, reference_pb2
from google.protobuf import empty_pb2

from tests.support import fake_server

Context = grpc.aio.ServicerContext[Any, Any]


@dataclasses.dataclass
class Created:
    """One CreateAgentExecution the fake received, with the id it answered and the call metadata."""

    request: command_pb2.CreateAgentExecutionRequest
    execution_id: str
    metadata: dict[str, str]

    @property
    def token(self) -> bytes:
        return self.request.execution.spec.callback_token


class FakeStigmer(
    agent_query_pb2_grpc.AgentQueryServiceServicer,
    command_pb2_grpc.AgentExecutionCommandServiceServicer,
):
    """Knows a set of agents by (scope, org, slug); records every create and cancel."""

    def __init__(self) -> None:
        self.agents: dict[tuple[int, str, str], agent_api_pb2.Agent] = {}
        self.agent_requests: list[agent_query_pb2.GetAgentByReferenceRequest] = []
        self.creates: list[Created] = []
        self.created: asyncio.Queue[Created] = asyncio.Queue()
        self.cancels: list[command_pb2.CancelAgentExecutionRequest] = []
        self.cancelled: asyncio.Queue[str] = asyncio.Queue()
        self.ids_by_key: dict[str, str] = {}
        # Status codes to answer the next creates with, one per call, before behaving normally.
        self.create_failures: list[grpc.StatusCode] = []
        self.ended: set[str] = set()
        # Seconds each create takes before answering (to exercise the caller's deadline).
        self.create_delay = 0.0

    def add_agent(
        self,
        slug: str,
        org: str = "acme",
        scope: int = reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION,
    ) -> agent_api_pb2.Agent:
        agent = agent_api_pb2.Agent(
            metadata=metadata_pb2.ApiResourceMetadata(id=f"agt-{slug}", slug=slug, org=org)
        )
        self.agents[(scope, org, slug)] = agent
        return agent

    async def GetAgentByReference(
        self, request: agent_query_pb2.GetAgentByReferenceRequest, context: Context
    ) -> agent_api_pb2.Agent:
        self.agent_requests.append(request)
        ref = request.ref
        agent = self.agents.get((ref.scope, ref.org, ref.slug))
        if agent is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"agent {ref.slug} not found")
        assert agent is not None
        return agent

    async def GetAgent(
        self, request: agent_query_pb2.GetAgentRequest, context: Context
    ) -> agent_api_pb2.Agent:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in the fake")
        raise AssertionError

    async def ListAgents(
        self, request: agent_query_pb2.ListAgentsRequest, context: Context
    ) -> agent_query_pb2.ListAgentsResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in the fake")
        raise AssertionError

    async def CreateAgentExecution(
        self, request: command_pb2.CreateAgentExecutionRequest, context: Context
    ) -> api_pb2.AgentExecution:
        if self.create_failures:
            code = self.create_failures.pop(0)
            await context.abort(code, f"injected {code.name}")
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        spec = request.execution.spec
        agent_id = spec.agent_id
        if not agent_id:
            # A create by reference resolves the agent as GetAgentByReference does.
            ref = spec.agent_ref
            agent = self.agents.get((ref.scope, ref.org, ref.slug))
            if agent is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"agent {ref.slug} not found")
            assert agent is not None
            agent_id = agent.metadata.id
        execution_id = self.ids_by_key.setdefault(
            spec.idempotency_key, f"exe-{uuid.uuid4().hex[:8]}"
        )
        metadata = {key: str(value) for key, value in context.invocation_metadata() or ()}
        created = Created(request, execution_id, metadata)
        self.creates.append(created)
        await self.created.put(created)
        execution = api_pb2.AgentExecution()
        execution.CopyFrom(request.execution)
        execution.metadata.id = execution_id
        execution.spec.agent_id = agent_id
        # Reads never return the token, like the real service.
        execution.spec.callback_token = b""
        return execution

    async def CancelAgentExecution(
        self, request: command_pb2.CancelAgentExecutionRequest, context: Context
    ) -> api_pb2.AgentExecution:
        self.cancels.append(request)
        await self.cancelled.put(request.id)
        if request.id in self.ended:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "execution already ended")
        self.ended.add(request.id)
        return api_pb2.AgentExecution(metadata=metadata_pb2.ApiResourceMetadata(id=request.id))

    async def UpdateAgentExecutionStatus(
        self, request: command_pb2.UpdateAgentExecutionStatusRequest, context: Context
    ) -> api_pb2.AgentExecution:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in the fake")
        raise AssertionError

    async def DeleteAgentExecution(
        self, request: command_pb2.DeleteAgentExecutionRequest, context: Context
    ) -> empty_pb2.Empty:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in the fake")
        raise AssertionError

    async def RedeliverCallback(
        self, request: command_pb2.RedeliverCallbackRequest, context: Context
    ) -> api_pb2.AgentExecution:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in the fake")
        raise AssertionError

    async def DecideToolCall(
        self, request: command_pb2.DecideToolCallRequest, context: Context
    ) -> api_pb2.AgentExecution:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in the fake")
        raise AssertionError


@contextlib.asynccontextmanager
async def serve_fake() -> AsyncIterator[tuple[FakeStigmer, str]]:
    """A fake on a fresh loopback port; yields it and its endpoint."""
    fake = FakeStigmer()
    async with fake_server.serving(
        fake,
        agent_query_pb2_grpc.add_AgentQueryServiceServicer_to_server,
        command_pb2_grpc.add_AgentExecutionCommandServiceServicer_to_server,
    ) as endpoint:
        yield fake, endpoint
