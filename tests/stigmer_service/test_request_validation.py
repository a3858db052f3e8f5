"""Requests that once reached INTERNAL (or, on SQLite, were silently stored) are INVALID_ARGUMENT
naming the field, on SQLite and on PostgreSQL: Durations protobuf cannot represent, update_mask
paths into a map or to no field, page tokens past int64, strings longer than their column, NUL
characters (PostgreSQL refuses them in text) and versions past the 32-bit column."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
import pytest_asyncio
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
from ai.stigmer.commons.apiresource import metadata_pb2
from google.protobuf import duration_pb2, field_mask_pb2
from temporalio.client import Client

from backend.stigmer_service import app
from tests.support import postgres
from tests.support.agents import ORG
from tests.support.service import Stubs, fast_settings, open_stubs

BEYOND_INT64 = str(2**63)


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def service(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path, temporal_client: Client
) -> AsyncIterator[Stubs]:
    async with contextlib.AsyncExitStack() as stack:
        settings = fast_settings(tmp_path)
        if request.param == "postgresql":
            db_url = await stack.enter_async_context(postgres.fresh_database("stigmer_requests"))
            settings = dataclasses.replace(settings, db_url=db_url)
        running = await stack.enter_async_context(app.running(settings, client=temporal_client))
        stubs = await open_stubs(running)
        stack.push_async_callback(stubs.channel.close)
        yield stubs


def execution(agent_id: str, **spec: Any) -> command_pb2.CreateAgentExecutionRequest:
    fields: dict[str, Any] = {"agent_id": agent_id, "message": "hi"} | spec
    return command_pb2.CreateAgentExecutionRequest(
        execution=api_pb2.AgentExecution(spec=spec_pb2.AgentExecutionSpec(**fields))
    )


def with_timeout(agent_id: str, seconds: int, nanos: int = 0) -> Any:
    timeout = duration_pb2.Duration(seconds=seconds, nanos=nanos)
    return execution(agent_id, execution_config=spec_pb2.ExecutionConfig(timeout=timeout))


def agent(
    *, name: str = "bad", org: str = ORG, **spec: Any
) -> agent_command_pb2.CreateAgentRequest:
    return agent_command_pb2.CreateAgentRequest(
        agent=agent_api_pb2.Agent(
            metadata=metadata_pb2.ApiResourceMetadata(name=name, org=org),
            spec=agent_spec_pb2.AgentSpec(**spec),
        )
    )


def agent_timeout(seconds: int, nanos: int = 0) -> agent_command_pb2.CreateAgentRequest:
    timeout = duration_pb2.Duration(seconds=seconds, nanos=nanos)
    return agent(model_options=agent_spec_pb2.ModelOptions(timeout=timeout))


def update(agent_id: str, *paths: str, **metadata: Any) -> agent_command_pb2.UpdateAgentRequest:
    return agent_command_pb2.UpdateAgentRequest(
        agent=agent_api_pb2.Agent(
            metadata=metadata_pb2.ApiResourceMetadata(id=agent_id, **metadata),
            spec=agent_spec_pb2.AgentSpec(description="d"),
        ),
        update_mask=field_mask_pb2.FieldMask(paths=list(paths)),
    )


# (what, the call on the stubs given a real agent id and a real execution id, the field named)
Case = tuple[str, Callable[[Stubs, str, str], Any], str]
CASES: list[Case] = [
    (
        "execution timeout past protobuf's range",
        lambda s, a, e: s.executions.CreateAgentExecution(with_timeout(a, 2**62)),
        "execution.spec.execution_config.timeout",
    ),
    (
        "execution timeout with sign-mismatched nanos",
        lambda s, a, e: s.executions.CreateAgentExecution(with_timeout(a, 5, -1)),
        "execution.spec.execution_config.timeout",
    ),
    (
        "agent modelOptions.timeout past protobuf's range",
        lambda s, a, e: s.agents.CreateAgent(agent_timeout(2**62)),
        "agent.spec.model_options.timeout",
    ),
    (
        "agent modelOptions.timeout with sign-mismatched nanos",
        lambda s, a, e: s.agents.CreateAgent(agent_timeout(-5, 1)),
        "agent.spec.model_options.timeout",
    ),
    (
        "update_mask into a map entry",
        lambda s, a, e: s.agents.UpdateAgent(update(a, "metadata.labels.team")),
        "update_mask",
    ),
    (
        "update_mask to no field",
        lambda s, a, e: s.agents.UpdateAgent(update(a, "spec.bogus")),
        "update_mask",
    ),
    (
        "version past the 32-bit column",
        lambda s, a, e: s.agents.UpdateAgent(update(a, "spec", version=2**40)),
        "agent.metadata.version",
    ),
    (
        "execution page_token past int64",
        lambda s, a, e: s.queries.ListAgentExecutions(
            query_pb2.ListAgentExecutionsRequest(page_token=BEYOND_INT64)
        ),
        "page_token",
    ),
    (
        "agent page_token past int64",
        lambda s, a, e: s.agent_queries.ListAgents(
            agent_query_pb2.ListAgentsRequest(org=ORG, page_token=BEYOND_INT64)
        ),
        "page_token",
    ),
    (
        "agent org longer than its column",
        lambda s, a, e: s.agents.CreateAgent(agent(org="o" * 256)),
        "agent.metadata.org",
    ),
    (
        "agent name longer than its column",
        lambda s, a, e: s.agents.CreateAgent(agent(name="n" * 256)),
        "agent.metadata.name",
    ),
    (
        "session id longer than its column",
        lambda s, a, e: s.executions.CreateAgentExecution(execution(a, session_id="s" * 65)),
        "execution.spec.session_id",
    ),
    (
        "idempotency key longer than its column",
        lambda s, a, e: s.executions.CreateAgentExecution(execution(a, idempotency_key="k" * 513)),
        "execution.spec.idempotency_key",
    ),
    (
        "error type longer than its column",
        lambda s, a, e: s.executions.UpdateAgentExecutionStatus(
            command_pb2.UpdateAgentExecutionStatusRequest(
                id=e,
                phase=status_pb2.EXECUTION_PHASE_FAILED,
                error=status_pb2.ExecutionError(type="t" * 256),
            )
        ),
        "error.type",
    ),
    (
        "NUL in an execution's message",
        lambda s, a, e: s.executions.CreateAgentExecution(execution(a, message="hi\x00there")),
        "execution.spec.message",
    ),
    (
        "NUL in an agent's instructions",
        lambda s, a, e: s.agents.CreateAgent(agent(instructions="be\x00kind")),
        "agent.spec.instructions",
    ),
    (
        "NUL in a label",
        lambda s, a, e: s.agents.UpdateAgent(
            update(a, "metadata.labels", labels={"team": "a\x00b"})
        ),
        "agent.metadata.labels",
    ),
    (
        "NUL in a looked-up id",
        lambda s, a, e: s.queries.GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=e + "\x00")
        ),
        "id",
    ),
    (
        "NUL in a cancel reason",
        lambda s, a, e: s.executions.CancelAgentExecution(
            command_pb2.CancelAgentExecutionRequest(id=e, reason="stop\x00")
        ),
        "reason",
    ),
    (
        "NUL in a list filter",
        lambda s, a, e: s.queries.ListAgentExecutions(
            query_pb2.ListAgentExecutionsRequest(session_id="ses\x00")
        ),
        "session_id",
    ),
]


async def test_bad_requests_are_invalid_argument_naming_the_field(service: Stubs) -> None:
    agent_id = (await service.agent("echo")).metadata.id
    # A long-running execution (the offline model's directive), so that status updates and
    # cancels reach past the lookup to the phase checks.
    running = await service.executions.CreateAgentExecution(
        execution(agent_id, message="#sleep=60")
    )
    execution_id = running.metadata.id
    wrong: list[str] = []
    for what, call, field in CASES:
        try:
            await call(service, agent_id, execution_id)
            wrong.append(f"{what}: accepted")
        except grpc.aio.AioRpcError as error:
            details = error.details() or ""
            if error.code() != grpc.StatusCode.INVALID_ARGUMENT or not details.startswith(field):
                wrong.append(f"{what}: {error.code().name} {details[:200]!r}")
    assert wrong == [], "\n".join(wrong)
    # Nothing was stored by the refused requests, and the service still answers.
    listed = await service.queries.ListAgentExecutions(query_pb2.ListAgentExecutionsRequest())
    assert [e.metadata.id for e in listed.executions] == [execution_id]
    await service.executions.CancelAgentExecution(
        command_pb2.CancelAgentExecutionRequest(id=execution_id)
    )


async def test_masks_that_name_real_fields_still_update(service: Stubs) -> None:
    agent_id = (await service.agent("echo")).metadata.id
    paths = ["spec.model_options.timeout", "metadata.labels", "spec.description"]
    for version, path in enumerate(paths, start=2):
        updated = await service.agents.UpdateAgent(update(agent_id, path, labels={"team": "a"}))
        assert updated.metadata.version == version
    assert updated.metadata.labels == {"team": "a"}
    assert updated.spec.description == "d"
