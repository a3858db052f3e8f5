"""The real Stigmer service, in-process on the session's dev server, for the end-to-end tests."""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest_asyncio
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_pb2_grpc
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.commons.apiresource import metadata_pb2
from temporalio.client import Client

from backend.stigmer_service import app
from backend.stigmer_service.config import Settings

ORG = "acme"
AGENT = "echoer"


@pytest_asyncio.fixture
async def service(temporal_client: Client, tmp_path: pathlib.Path) -> AsyncIterator[app.Service]:
    """The real service (gRPC server and its execution worker) in-process, on a fresh database."""
    settings = Settings(
        listen="127.0.0.1:0",
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'stigmer.db'}",
        temporal_address="unused: the client is given",
        task_queue=f"stigmer-e2e-{uuid.uuid4()}",
        # Cancellation reaches the agent on the service's next heartbeat of the caller.
        caller_heartbeat_interval=0.5,
        grace_period=1.0,
    )
    async with app.running(settings, client=temporal_client) as running:
        async with grpc.aio.insecure_channel(running.address) as channel:
            await agent_command_pb2_grpc.AgentCommandServiceStub(channel).CreateAgent(
                agent_command_pb2.CreateAgentRequest(
                    agent=agent_api_pb2.Agent(
                        metadata=metadata_pb2.ApiResourceMetadata(name=AGENT, slug=AGENT, org=ORG),
                        spec=agent_spec_pb2.AgentSpec(instructions="Echo.", model="offline/echo"),
                    )
                ),
                timeout=10,
            )
        yield running
