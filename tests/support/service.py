"""The Stigmer service in-process: its settings for tests, and typed stubs on its port."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_grpc
from ai.stigmer.agentic.agent.v1 import query_pb2_grpc as agent_query_grpc
from ai.stigmer.agentic.agentexecution.v1 import command_pb2_grpc, query_pb2_grpc
from cryptography.fernet import Fernet
from temporalio.client import Client

from backend.stigmer_service import app
from backend.stigmer_service.config import Settings
from tests.support.agents import ORG
from tests.support.agents import agent as agent_resource


def settings(
    state_dir: pathlib.Path, task_queue: str, *, db_name: str = "stigmer.db", **overrides: Any
) -> Settings:
    """A service on a free loopback port, with a database of its own in `state_dir`, and the
    offline model provider on (with its `#wait-for` test gate), as the tests' agents use it."""
    values: dict[str, Any] = {"offline_provider": True, "test_offline_gates": True}
    values.update(overrides)
    return Settings(
        listen="127.0.0.1:0",
        db_url=f"sqlite+aiosqlite:///{state_dir / db_name}",
        task_queue=task_queue,
        **values,
    )


def fast_settings(tmp_path: pathlib.Path, **overrides: Any) -> Settings:
    """Settings with short intervals so the suite stays fast."""
    values: dict[str, Any] = {
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
    return settings(tmp_path, f"stigmer-test-{uuid.uuid4()}", **values)


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
        self, slug: str = "echo", org: str = ORG, **spec: object
    ) -> agent_api_pb2.Agent:
        return await self.agents.ApplyAgent(
            agent_command_pb2.ApplyAgentRequest(agent=agent_resource(slug, org, **spec))
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


@contextlib.asynccontextmanager
async def serving(settings: Settings, client: Client) -> AsyncIterator[Stubs]:
    """The service in-process with `settings`, and stubs on a channel to it (closed after)."""
    async with app.running(settings, client=client) as service:
        stubs = await open_stubs(service)
        try:
            yield stubs
        finally:
            await stubs.channel.close()
