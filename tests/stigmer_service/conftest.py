"""An in-process Stigmer service (gRPC on a loopback port + execution worker) per test."""

from __future__ import annotations

import dataclasses
import pathlib
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_grpc
from ai.stigmer.agentic.agent.v1 import query_pb2_grpc as agent_query_grpc
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import command_pb2_grpc, query_pb2_grpc
from ai.stigmer.commons.apiresource import metadata_pb2
from cryptography.fernet import Fernet
from temporalio.client import Client

from backend.stigmer_service import app, logs
from backend.stigmer_service.config import Settings


def fast_settings(tmp_path: pathlib.Path, **overrides: object) -> Settings:
    """Settings with short intervals so the suite stays fast."""
    values: dict[str, object] = {
        "listen": "127.0.0.1:0",
        "db_url": f"sqlite+aiosqlite:///{tmp_path / 'stigmer.db'}",
        "task_queue": f"stigmer-test-{uuid.uuid4()}",
        "secrets_key": Fernet.generate_key().decode(),
        "default_execution_timeout": 60.0,
        "caller_heartbeat_interval": 0.5,
        "activity_heartbeat_interval": 0.3,
        "activity_heartbeat_timeout": 5.0,
        "model_max_attempts": 3,
        "model_retry_initial_interval": 0.1,
        "callback_max_attempts": 3,
        "callback_retry_initial_interval": 0.1,
        "callback_rpc_timeout": 5.0,
        "start_rpc_timeout": 3.0,
        "watch_poll_interval": 0.05,
        "grace_period": 1.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@dataclasses.dataclass
class Stubs:
    service: app.Service
    channel: grpc.aio.Channel
    agents: agent_command_grpc.AgentCommandServiceAsyncStub
    agent_queries: agent_query_grpc.AgentQueryServiceAsyncStub
    executions: command_pb2_grpc.AgentExecutionCommandServiceAsyncStub
    queries: query_pb2_grpc.AgentExecutionQueryServiceAsyncStub

    @property
    def endpoint(self) -> str:
        return self.service.address

    async def agent(
        self, slug: str = "echo", org: str = "acme", **spec: object
    ) -> agent_api_pb2.Agent:
        return await self.agents.ApplyAgent(
            agent_command_pb2.ApplyAgentRequest(
                agent=agent_api_pb2.Agent(
                    metadata=metadata_pb2.ApiResourceMetadata(name=slug, org=org),
                    spec=agent_spec_pb2.AgentSpec(**spec),  # type: ignore[arg-type]
                )
            )
        )


async def open_stubs(service: app.Service) -> Stubs:
    channel = grpc.aio.insecure_channel(service.address)
    return Stubs(
        service=service,
        channel=channel,
        agents=agent_command_grpc.AgentCommandServiceStub(channel),
        agent_queries=agent_query_grpc.AgentQueryServiceStub(channel),
        executions=command_pb2_grpc.AgentExecutionCommandServiceStub(channel),
        queries=query_pb2_grpc.AgentExecutionQueryServiceStub(channel),
    )


@pytest.fixture(scope="session", autouse=True)
def _service_logs() -> None:
    """Service logs go to the real stderr (as in `serve`), never into captured CLI stdout."""
    logs.configure()


@pytest_asyncio.fixture
async def stigmer(tmp_path: pathlib.Path, temporal_client: Client) -> AsyncIterator[Stubs]:
    """The service with its worker, against the session's Temporal dev server."""
    async with app.running(fast_settings(tmp_path), client=temporal_client) as service:
        stubs = await open_stubs(service)
        try:
            yield stubs
        finally:
            await stubs.channel.close()
