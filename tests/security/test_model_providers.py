"""Finding 2: the model endpoint and its key are the operator's. An agent naming a base URL or a
key variable is refused, one stored with them runs against the configured provider, and a 4xx
body never reaches Get verbatim. A local HTTP server stands in for the model, another for the
attacker's host."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    query_pb2,
    spec_pb2,
    status_pb2,
)
from temporalio.client import Client

from tests.support import model_server
from tests.support.agents import ORG, agent
from tests.support.eventually import eventually
from tests.support.model_server import ModelServer, answer
from tests.support.service import Stubs, fast_settings, serving

OPERATOR_KEY = "operator-key-5c1b7e0d"
ENDED = (status_pb2.EXECUTION_PHASE_COMPLETED, status_pb2.EXECUTION_PHASE_FAILED)


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with model_server.serving() as server:
        yield server


@pytest.fixture
def attacker() -> Iterator[ModelServer]:
    with model_server.serving() as server:
        yield server


@pytest_asyncio.fixture
async def stigmer(
    tmp_path: pathlib.Path,
    temporal_client: Client,
    model: ModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Stubs]:
    """The service with one configured provider, `local`, at the stand-in model server."""
    monkeypatch.setenv("LOCAL_MODEL_KEY", OPERATOR_KEY)
    providers = tmp_path / "providers.yaml"
    providers.write_text(
        "providers:\n"
        f"  local: {{kind: openai-compatible, base_url: '{model.base_url}',"
        " api_key_env: LOCAL_MODEL_KEY}\n"
    )
    settings = fast_settings(tmp_path, providers_file=str(providers))
    async with serving(settings, temporal_client) as stubs:
        yield stubs


async def refused(call: Any) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    return raised.value.details() or ""


async def run(stigmer: Stubs, agent_id: str, message: str) -> api_pb2.AgentExecution:
    created = await stigmer.executions.CreateAgentExecution(
        command_pb2.CreateAgentExecutionRequest(
            execution=api_pb2.AgentExecution(
                spec=spec_pb2.AgentExecutionSpec(agent_id=agent_id, message=message)
            )
        )
    )

    async def ended() -> api_pb2.AgentExecution:
        execution = await stigmer.queries.GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=created.metadata.id)
        )
        assert execution.status.phase in ENDED, execution.status
        return execution

    return await eventually(ended, timeout=60)


async def test_an_agent_cannot_point_a_key_at_another_host(
    stigmer: Stubs, model: ModelServer, attacker: ModelServer
) -> None:
    stealing = agent_spec_pb2.ModelOptions(
        base_url=f"{attacker.base_url}", api_key_env="STIGMER_SECRETS_KEY"
    )
    create = agent("thief", model="local/tiny", model_options=stealing)
    details = await refused(
        stigmer.agents.CreateAgent(agent_command_pb2.CreateAgentRequest(agent=create))
    )
    assert "agent.spec.model_options.base_url" in details
    details = await refused(
        stigmer.agents.ApplyAgent(agent_command_pb2.ApplyAgentRequest(agent=create))
    )
    assert "agent.spec.model_options.base_url" in details
    key_only = agent(
        "key-only",
        model="local/tiny",
        model_options=agent_spec_pb2.ModelOptions(api_key_env="STIGMER_SECRETS_KEY"),
    )
    details = await refused(
        stigmer.agents.CreateAgent(agent_command_pb2.CreateAgentRequest(agent=key_only))
    )
    assert "agent.spec.model_options.api_key_env" in details
    # An existing agent cannot be updated to them either.
    honest = await stigmer.agent("honest", model="local/tiny")
    honest.spec.model_options.base_url = attacker.base_url
    details = await refused(
        stigmer.agents.UpdateAgent(agent_command_pb2.UpdateAgentRequest(agent=honest))
    )
    assert "agent.spec.model_options.base_url" in details
    # The honest agent still runs, against the operator's endpoint with the operator's key.
    execution = await run(stigmer, honest.metadata.id, "hello")
    assert execution.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED, execution.status
    assert [s.authorization for s in model.seen] == [f"Bearer {OPERATOR_KEY}"]
    assert attacker.seen == []


async def test_options_stored_before_are_ignored(
    stigmer: Stubs, model: ModelServer, attacker: ModelServer
) -> None:
    """An agent written before the rule (straight into the store) keeps its options in the
    database, but the call goes to the configured provider with the configured key."""
    record = await stigmer.service.store.create_agent(
        org=ORG,
        slug="legacy",
        name="legacy",
        labels={},
        annotations={},
        spec={
            "model": "local/tiny",
            "modelOptions": {"baseUrl": attacker.base_url, "apiKeyEnv": "STIGMER_SECRETS_KEY"},
        },
    )
    model.script = [(200, answer("from the operator's model"))]
    execution = await run(stigmer, record.id, "hello")
    assert execution.status.phase == status_pb2.EXECUTION_PHASE_COMPLETED, execution.status
    assert attacker.seen == []
    assert [s.authorization for s in model.seen] == [f"Bearer {OPERATOR_KEY}"]
    assert execution.status.messages[-1].content == "from the operator's model"


async def test_a_4xx_body_does_not_reach_get(stigmer: Stubs, model: ModelServer) -> None:
    honest = await stigmer.agent("honest", model="local/tiny")
    echoed = f"Incorrect API key provided: {OPERATOR_KEY}. Internal: db-primary.corp:5432 " + (
        "y" * 3000
    )
    model.script = [(401, {"error": {"message": echoed}})]
    execution = await run(stigmer, honest.metadata.id, "hello")
    assert execution.status.phase == status_pb2.EXECUTION_PHASE_FAILED
    message = execution.status.error.message
    assert "HTTP 401" in message, message
    assert OPERATOR_KEY not in message and "yyyyyyyyyy" not in message, message
    assert len(message) < 300, message


async def test_a_model_of_no_configured_provider_is_invalid(stigmer: Stubs) -> None:
    details = await refused(
        stigmer.agents.CreateAgent(
            agent_command_pb2.CreateAgentRequest(agent=agent("nope", model="elsewhere/x"))
        )
    )
    assert "agent.spec.model" in details and "local" in details
