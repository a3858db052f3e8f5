"""Finding 13: the offline provider is the operator's choice, and its directives are bounded:
a service without configuration has no offline model and no default model; `#sleep=` is capped,
`#wait-for=` needs the test setting, and `#fail=` types (a metric label) are a known set."""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    query_pb2,
    spec_pb2,
    status_pb2,
)
from temporalio.client import Client

from backend.common import contract
from backend.stigmer_service.providers import registry
from backend.stigmer_service.providers.base import ChatMessage, ModelCallError, ModelRequest
from backend.stigmer_service.providers.catalog import OfflineLimits, build
from tests.support.agents import agent
from tests.support.eventually import eventually
from tests.support.service import Stubs, fast_settings, serving


@pytest_asyncio.fixture
async def unconfigured(tmp_path: pathlib.Path, temporal_client: Client) -> AsyncIterator[Stubs]:
    """The service as a bare `serve` runs it: no offline provider, no default model."""
    settings = fast_settings(tmp_path, offline_provider=False, test_offline_gates=False)
    async with serving(settings, temporal_client) as stubs:
        yield stubs


async def test_a_service_without_configuration_has_no_offline_model(unconfigured: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await unconfigured.agents.CreateAgent(
            agent_command_pb2.CreateAgentRequest(agent=agent("echo", model="offline/echo"))
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "agent.spec.model" in (raised.value.details() or "")


async def test_an_agent_without_a_model_fails_clearly(unconfigured: Stubs) -> None:
    modelless = await unconfigured.agent("modelless")
    created = await unconfigured.executions.CreateAgentExecution(
        command_pb2.CreateAgentExecutionRequest(
            execution=api_pb2.AgentExecution(
                spec=spec_pb2.AgentExecutionSpec(agent_id=modelless.metadata.id, message="hi")
            )
        )
    )

    async def failed() -> api_pb2.AgentExecution:
        execution = await unconfigured.queries.GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=created.metadata.id)
        )
        assert execution.status.phase == status_pb2.EXECUTION_PHASE_FAILED, execution.status
        return execution

    execution = await eventually(failed, timeout=60)
    assert execution.status.error.type == contract.MODEL_ERROR
    assert "no model" in execution.status.error.message


def ask(message: str) -> ModelRequest:
    return ModelRequest("echo", "echo", [ChatMessage("user", message)], env={}, secret_values=[])


def offline(limits: OfflineLimits) -> registry.Resolved:
    return registry.resolve("offline/echo", build(offline=True, limits=limits))


async def test_sleep_is_capped() -> None:
    started = time.monotonic()
    reply = await offline(OfflineLimits(max_sleep=0.2)).provider.complete(ask("#sleep=600 hi"))
    assert time.monotonic() - started < 5
    assert reply == "echo: #sleep=600 hi"


async def test_wait_for_needs_the_test_setting(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ModelCallError) as raised:
        await offline(OfflineLimits()).provider.complete(ask("#wait-for=/etc/hostname"))
    assert not raised.value.retryable and "test directive" in str(raised.value)
    gate = tmp_path / "gate"
    waiting = asyncio.ensure_future(
        offline(OfflineLimits(gates=True)).provider.complete(ask(f"#wait-for={gate}"))
    )
    await asyncio.sleep(0.3)
    assert not waiting.done()
    gate.touch()
    assert (await asyncio.wait_for(waiting, 10)).startswith("echo: #wait-for=")


@pytest.mark.parametrize("label", ["STIGMER_SECRETS_KEY", "a" * 200, "Unknown_1"])
async def test_fail_types_are_a_known_set(label: str) -> None:
    with pytest.raises(ModelCallError) as raised:
        await offline(OfflineLimits()).provider.complete(ask(f"#fail={label}"))
    assert raised.value.error_type == contract.MODEL_ERROR
    assert not raised.value.retryable


async def test_the_known_fail_types_still_fail_as_told() -> None:
    for label in ("ModelError", "QuotaExceeded", "ToolExploded", "Boom"):
        with pytest.raises(ModelCallError) as raised:
            await offline(OfflineLimits()).provider.complete(ask(f"#fail={label}"))
        assert raised.value.error_type == label
