"""Findings 5 and 14 at the process boundary: a served `stigmer-service serve` with credentials
from a file; another org's token cannot read, forge or take over an execution, and reflection (a
client-streaming method) needs a credential too."""

from __future__ import annotations

import contextlib
import hashlib
import pathlib
import sys
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_grpc
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    command_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    spec_pb2,
    status_pb2,
)
from ai.stigmer.commons.apiresource import metadata_pb2
from grpc_reflection.v1alpha import (  # type: ignore[import-untyped]
    reflection_pb2,
    reflection_pb2_grpc,
)

from backend.common import temporal_dev_server
from tests.support.agents import OFFLINE_MODEL, agent
from tests.support.processes import Process, child_env, wait_serving

OWNER, OTHER_SERVICE = "tok-acme-user", "tok-beta-service"


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def credentials(path: pathlib.Path) -> pathlib.Path:
    entries = [("acme-user", OWNER, "user", "acme"), ("beta-ops", OTHER_SERVICE, "service", "beta")]
    path.write_text(
        "credentials:\n"
        + "".join(
            f"  - {{name: {name}, sha256: {hashlib.sha256(token.encode()).hexdigest()}, "
            f"role: {role}, orgs: [{org}]}}\n"
            for name, token, role, org in entries
        ),
        encoding="utf-8",
    )
    return path


@pytest_asyncio.fixture
async def served(
    tmp_path: pathlib.Path, temporal_server: temporal_dev_server.DevServer
) -> AsyncIterator[str]:
    address = f"127.0.0.1:{temporal_dev_server.free_port()}"
    service = Process(
        "stigmer-service",
        [sys.executable, "-m", "backend.stigmer_service.main", "serve"],
        child_env(
            {
                "STIGMER_LISTEN": address,
                "STIGMER_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'stigmer.db'}",
                "TEMPORAL_ADDRESS": temporal_server.address,
                "STIGMER_TASK_QUEUE": f"tenancy-{tmp_path.name}",
                "STIGMER_CREDENTIALS_FILE": str(credentials(tmp_path / "credentials.yaml")),
                "STIGMER_OFFLINE_PROVIDER": "1",
                "STIGMER_TEST_OFFLINE_GATES": "1",
            }
        ),
        tmp_path / "service.log",
    )
    service.start()
    try:
        await wait_serving(address, service)
        yield address
    finally:
        service.stop()
    log = service.log_text()
    assert OWNER not in log and OTHER_SERVICE not in log, "a token reached the service's log"


async def test_another_orgs_token_cannot_forge_read_or_take_over(served: str) -> None:
    async with grpc.aio.insecure_channel(served) as channel:
        agents = agent_command_grpc.AgentCommandServiceStub(channel)
        commands = command_pb2_grpc.AgentExecutionCommandServiceStub(channel)
        queries = query_pb2_grpc.AgentExecutionQueryServiceStub(channel)
        created_agent = await agents.ApplyAgent(
            agent_command_pb2.ApplyAgentRequest(
                agent=agent("echo", "acme", instructions="Answer.", model=OFFLINE_MODEL)
            ),
            metadata=bearer(OWNER),
            timeout=10,
        )
        execution = await commands.CreateAgentExecution(
            command_pb2.CreateAgentExecutionRequest(
                execution=api_pb2.AgentExecution(
                    metadata=metadata_pb2.ApiResourceMetadata(org="acme"),
                    spec=spec_pb2.AgentExecutionSpec(
                        agent_id=created_agent.metadata.id,
                        message="hello",
                        idempotency_key="wf/run/1",
                    ),
                )
            ),
            metadata=bearer(OWNER),
            timeout=10,
        )
        eid = execution.metadata.id
        forged = command_pb2.UpdateAgentExecutionStatusRequest(
            id=eid, phase=status_pb2.EXECUTION_PHASE_COMPLETED, output="forged answer"
        )
        for call in (
            commands.UpdateAgentExecutionStatus(forged, metadata=bearer(OTHER_SERVICE), timeout=10),
            queries.GetAgentExecution(
                query_pb2.GetAgentExecutionRequest(id=eid),
                metadata=bearer(OTHER_SERVICE),
                timeout=10,
            ),
            commands.RedeliverCallback(
                command_pb2.RedeliverCallbackRequest(id=eid),
                metadata=bearer(OTHER_SERVICE),
                timeout=10,
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        listed = await queries.ListAgentExecutions(
            query_pb2.ListAgentExecutionsRequest(), metadata=bearer(OTHER_SERVICE), timeout=10
        )
        assert list(listed.executions) == []
        mine = await queries.GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=eid), metadata=bearer(OWNER), timeout=10
        )
        assert mine.status.output != "forged answer"


async def test_reflection_needs_a_credential(served: str) -> None:
    async with grpc.aio.insecure_channel(served) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        ask = reflection_pb2.ServerReflectionRequest(list_services="")
        # The server refuses before it reads the request: written by a request iterator, the
        # client's own write could fail first and hide the status behind INTERNAL ("Failed
        # execute_batch"). The call's status is what the server answered.
        refused = stub.ServerReflectionInfo(timeout=10)
        with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError):
            await refused.write(ask)
            await refused.done_writing()
        assert await refused.code() == grpc.StatusCode.UNAUTHENTICATED
        answers = [
            a
            async for a in stub.ServerReflectionInfo(
                iter([ask]), metadata=bearer(OWNER), timeout=10
            )
        ]
        names = {s.name for s in answers[0].list_services_response.service}
        assert "ai.stigmer.agentic.agentexecution.v1.AgentExecutionQueryService" in names
