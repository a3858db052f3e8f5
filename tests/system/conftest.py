"""A whole stack of real processes per test: dev server (SQLite), Stigmer service, DSL worker."""

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

from backend.common import temporal_dev_server
from tests.system.stack import Stack

ORG = "acme"
AGENT = "fault-agent"

# Short timers so that a killed component's work is retried within seconds, not minutes.
FAST_SERVICE_ENV = {
    "STIGMER_CALLER_HEARTBEAT_INTERVAL": "1",
    "STIGMER_ACTIVITY_HEARTBEAT_TIMEOUT": "4",
    "STIGMER_GRACE_PERIOD": "2",
}
# A secret the worker resolves for `$secrets.API_KEY`; the tests check it never leaks.
SECRET_VALUE = "sk-system-test-0b9c2f7e"
WORKER_ENV = {"STIGMER_SECRET_API_KEY": SECRET_VALUE}


@pytest_asyncio.fixture
async def stack(tmp_path: pathlib.Path) -> AsyncIterator[Stack]:
    temporal = await temporal_dev_server.start(
        db_filename=tmp_path / "temporal.db", log_path=tmp_path / "temporal.log"
    )
    stack = Stack(
        state_dir=tmp_path,
        temporal=temporal,
        service_port=temporal_dev_server.free_port(),
        service_env=FAST_SERVICE_ENV,
        worker_task_queue=f"system-{uuid.uuid4()}",
        worker_env=WORKER_ENV,
    )
    try:
        await stack.start_service()
        await stack.start_worker()
        async with grpc.aio.insecure_channel(stack.service_address) as channel:
            await agent_command_pb2_grpc.AgentCommandServiceStub(channel).CreateAgent(
                agent_command_pb2.CreateAgentRequest(
                    agent=agent_api_pb2.Agent(
                        metadata=metadata_pb2.ApiResourceMetadata(name=AGENT, slug=AGENT, org=ORG),
                        spec=agent_spec_pb2.AgentSpec(instructions="Answer.", model="offline/echo"),
                    )
                ),
                timeout=10,
            )
        yield stack
    finally:
        stack.stop()
        stack.temporal.stop()
