"""Bad requests get the canonical status code naming the field, and the server keeps serving."""

from __future__ import annotations

import pathlib
from typing import Any

import grpc
import pytest
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2 as agent_query_pb2
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    query_pb2,
    spec_pb2,
    status_pb2,
)
from ai.stigmer.commons.apiresource import metadata_pb2, reference_pb2
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from temporalio.client import Client

from backend.stigmer_service import app
from tests.support.service import Stubs, fast_settings, open_stubs


async def expect(code: grpc.StatusCode, call: Any, *fragments: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code, raised.value.details()
    for fragment in fragments:
        assert fragment in (raised.value.details() or "")


def create(**spec: Any) -> command_pb2.CreateAgentExecutionRequest:
    return command_pb2.CreateAgentExecutionRequest(
        execution=api_pb2.AgentExecution(spec=spec_pb2.AgentExecutionSpec(**spec))
    )


async def test_bad_requests_get_the_right_codes(stigmer: Stubs) -> None:
    agent = await stigmer.agent("echo")
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    ex = stigmer.executions
    await expect(
        invalid, ex.CreateAgentExecution(command_pb2.CreateAgentExecutionRequest()), "execution"
    )
    await expect(
        invalid,
        ex.CreateAgentExecution(create(agent_id=agent.metadata.id)),
        "spec.message: must not be empty",
    )
    await expect(invalid, ex.CreateAgentExecution(create(message="hi")), "spec.agent_id")
    await expect(
        invalid,
        ex.CreateAgentExecution(
            create(
                agent_id=agent.metadata.id,
                message="hi",
                execution_config=spec_pb2.ExecutionConfig(
                    timeout=duration_pb2.Duration(seconds=-1)
                ),
            )
        ),
        "spec.execution_config.timeout",
    )
    await expect(
        invalid,
        ex.CreateAgentExecution(
            create(
                agent_id=agent.metadata.id,
                message="hi",
                execution_config=spec_pb2.ExecutionConfig(model_name="nope/x"),
            )
        ),
        "spec.execution_config.model_name",
    )
    not_found = grpc.StatusCode.NOT_FOUND
    await expect(
        not_found,
        ex.CreateAgentExecution(create(agent_id="agt-missing", message="hi")),
        "agt-missing",
    )
    await expect(
        not_found,
        ex.CreateAgentExecution(create(session_id="ses-missing", message="hi")),
        "ses-missing",
    )
    await expect(
        not_found, stigmer.queries.GetAgentExecution(query_pb2.GetAgentExecutionRequest(id="aex-x"))
    )
    watch = stigmer.queries.WatchAgentExecution(query_pb2.WatchAgentExecutionRequest(id="aex-x"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in watch:
            pass
    assert raised.value.code() == not_found
    await expect(
        invalid, stigmer.queries.GetAgentExecution(query_pb2.GetAgentExecutionRequest()), "id"
    )
    await expect(
        invalid,
        stigmer.queries.ListAgentExecutions(query_pb2.ListAgentExecutionsRequest(page_token="x")),
        "page_token",
    )
    await expect(
        not_found, ex.CancelAgentExecution(command_pb2.CancelAgentExecutionRequest(id="aex-x"))
    )
    await expect(
        not_found, stigmer.agent_queries.GetAgent(agent_query_pb2.GetAgentRequest(id="agt-x"))
    )
    await expect(
        not_found,
        stigmer.agent_queries.GetAgentByReference(
            agent_query_pb2.GetAgentByReferenceRequest(
                ref=reference_pb2.ApiResourceReference(
                    scope=reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION,
                    org="acme",
                    slug="nope",
                )
            )
        ),
    )
    await expect(
        invalid,
        stigmer.agent_queries.GetAgentByReference(
            agent_query_pb2.GetAgentByReferenceRequest(
                ref=reference_pb2.ApiResourceReference(
                    scope=reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION, slug="echo"
                )
            )
        ),
        "ref.org",
    )
    # Agents: duplicates, missing names, bad models, stale versions.
    duplicate = agent_api_pb2.Agent(
        metadata=metadata_pb2.ApiResourceMetadata(name="echo", org="acme")
    )
    await expect(
        grpc.StatusCode.ALREADY_EXISTS,
        stigmer.agents.CreateAgent(agent_command_pb2.CreateAgentRequest(agent=duplicate)),
    )
    await expect(
        invalid,
        stigmer.agents.CreateAgent(
            agent_command_pb2.CreateAgentRequest(
                agent=agent_api_pb2.Agent(metadata=metadata_pb2.ApiResourceMetadata())
            )
        ),
        "agent.metadata.name",
    )
    await expect(
        invalid,
        stigmer.agents.CreateAgent(
            agent_command_pb2.CreateAgentRequest(
                agent=agent_api_pb2.Agent(
                    metadata=metadata_pb2.ApiResourceMetadata(name="x"),
                    spec=agent_spec_pb2.AgentSpec(model="gpt"),
                )
            )
        ),
        "agent.spec.model",
    )
    stale = agent_api_pb2.Agent(
        metadata=metadata_pb2.ApiResourceMetadata(id=agent.metadata.id, version=99, name="n")
    )
    await expect(
        grpc.StatusCode.ABORTED,
        stigmer.agents.UpdateAgent(agent_command_pb2.UpdateAgentRequest(agent=stale)),
    )
    # Cancelling an execution that has ended: FAILED_PRECONDITION.
    done = await ex.CreateAgentExecution(create(agent_id=agent.metadata.id, message="hi"))
    await stigmer.executions.CancelAgentExecution(
        command_pb2.CancelAgentExecutionRequest(id=done.metadata.id)
    )
    await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        ex.CancelAgentExecution(command_pb2.CancelAgentExecutionRequest(id=done.metadata.id)),
        "already ended",
    )
    # Still serving.
    listed = await stigmer.queries.ListAgentExecutions(query_pb2.ListAgentExecutionsRequest())
    assert [e.status.phase for e in listed.executions] == [status_pb2.EXECUTION_PHASE_CANCELLED]
    health = await health_pb2_grpc.HealthStub(stigmer.channel).Check(
        health_pb2.HealthCheckRequest()
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_session_only_create_uses_the_sessions_agent(stigmer: Stubs) -> None:
    agent = await stigmer.agent("echo")
    first = await stigmer.executions.CreateAgentExecution(
        create(agent_id=agent.metadata.id, message="one")
    )
    second = await stigmer.executions.CreateAgentExecution(
        create(session_id=first.spec.session_id, message="#recall")
    )
    assert second.spec.agent_id == agent.metadata.id
    watch = stigmer.queries.WatchAgentExecution(
        query_pb2.WatchAgentExecutionRequest(id=second.metadata.id)
    )
    seen = [e async for e in watch]
    assert seen[-1].status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    # The second execution saw the session's earlier user message.
    assert seen[-1].status.output == "one"


async def test_bearer_auth(tmp_path: pathlib.Path, temporal_client: Client) -> None:
    settings = fast_settings(tmp_path, api_token="s3cr3t-api-token")
    async with app.running(settings, client=temporal_client, run_worker=False) as service:
        stubs = await open_stubs(service)
        try:
            request = agent_query_pb2.ListAgentsRequest()
            await expect(grpc.StatusCode.UNAUTHENTICATED, stubs.agent_queries.ListAgents(request))
            await expect(
                grpc.StatusCode.UNAUTHENTICATED,
                stubs.agent_queries.ListAgents(
                    request, metadata=(("authorization", "Bearer wrong"),)
                ),
            )
            good = (("authorization", "Bearer s3cr3t-api-token"),)
            assert list((await stubs.agent_queries.ListAgents(request, metadata=good)).agents) == []
            # Health needs no token.
            health = await health_pb2_grpc.HealthStub(stubs.channel).Check(
                health_pb2.HealthCheckRequest()
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            await stubs.channel.close()
