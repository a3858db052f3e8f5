"""`CallAgentActivity` in an `ActivityEnvironment`, against a recording fake Stigmer service."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
import pytest_asyncio
import structlog
from ai.stigmer.commons.apiresource import reference_pb2
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from backend.common import secret_placeholders
from backend.common.contract import token_hash
from backend.workflow_runner.agent_call import secrets
from backend.workflow_runner.agent_call.activities import CallAgentActivity
from backend.workflow_runner.agent_call.models import (
    CallAgentInput,
    CancelAgentCallInput,
    SecretScope,
)
from tests.workflow_runner.agent_call.fake_stigmer import FakeStigmer, serve_fake

# Printable, so that a raw leak is visible in any rendered log line too.
TOKEN = b"task-token-\x00\x01-do-not-log-" + bytes(range(200, 232))
SECRET_VALUE = "sk-live-VERY-secret-value-42"
# What a workflow declaring these secrets hands the activity: its seal and the declared names.
SCOPE = SecretScope("5" * 32, ("api_key", "db.pass", "openai-key", "known", "missing_one"))


def sealed(name: str) -> str:
    return secret_placeholders.sealed(SCOPE.seal, name)


def resolver(values: dict[str, str]) -> secrets.SecretResolver:
    return values.get


def environment(token: bytes = TOKEN, attempt: int = 1) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        task_token=token,
        attempt=attempt,
        workflow_id="wf-orders-7",
        workflow_run_id="run-0192",
        activity_id="3",
        namespace="default",
        workflow_namespace="default",
        task_queue="runner-q",
        heartbeat_timeout=timedelta(seconds=60),
    )
    return env


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[tuple[FakeStigmer, str]]:
    async with serve_fake() as served:
        served[0].add_agent("summarizer", org="acme")
        yield served


def call(**overrides: Any) -> CallAgentInput:
    base = CallAgentInput(
        agent="summarizer",
        message="Summarize the report",
        org="acme",
        secret_seal=SCOPE.seal,
        secret_names=list(SCOPE.names),
    )
    return dataclasses.replace(base, **overrides)


async def run_pending(
    activities: CallAgentActivity, the_call: CallAgentInput, env: ActivityEnvironment | None = None
) -> list[Any]:
    """Runs call_agent, which must end pending (complete-async); returns its heartbeats."""
    env = env or environment()
    heartbeats: list[Any] = []
    env.on_heartbeat = lambda *details: heartbeats.extend(details)
    with pytest.raises(activity._CompleteAsyncError):
        await env.run(activities.call_agent, the_call)
    return heartbeats


async def test_creates_the_execution_with_the_token_key_and_caller_then_stays_pending(
    fake: tuple[FakeStigmer, str],
) -> None:
    service, endpoint = fake
    activities = CallAgentActivity(endpoint, api_token="api-token-1")
    the_call = call(model="offline/echo", timeout_seconds=90, temperature=0.2, session_id="ses-1")
    heartbeats = await run_pending(activities, the_call)
    await activities.close()

    # One RPC: the agent goes by its reference inside the create.
    assert service.agent_requests == []
    [created] = service.creates
    spec = created.request.execution.spec
    assert spec.agent_ref.slug == "summarizer"
    assert spec.agent_ref.org == "acme"
    assert spec.agent_ref.scope == reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION
    assert spec.agent_ref.kind == reference_pb2.API_RESOURCE_KIND_AGENT
    assert spec.agent_id == ""
    assert created.token == TOKEN  # byte-exact
    assert spec.idempotency_key == "wf-orders-7/run-0192/3"
    assert spec.message == "Summarize the report"
    assert spec.session_id == "ses-1"
    assert (spec.caller.workflow_id, spec.caller.run_id, spec.caller.activity_id) == (
        "wf-orders-7",
        "run-0192",
        "3",
    )
    assert (spec.caller.namespace, spec.caller.task_queue) == ("default", "runner-q")
    assert spec.execution_config.model_name == "offline/echo"
    assert spec.execution_config.timeout.ToTimedelta() == timedelta(seconds=90)
    assert spec.execution_config.HasField("temperature")
    assert spec.execution_config.temperature == pytest.approx(0.2)
    assert created.request.execution.metadata.org == "acme"
    assert created.metadata["authorization"] == "Bearer api-token-1"
    assert heartbeats == [{"execution_id": created.execution_id}]


async def test_defaults_send_an_explicit_timeout_and_no_temperature(
    fake: tuple[FakeStigmer, str],
) -> None:
    service, endpoint = fake
    activities = CallAgentActivity(endpoint)
    await run_pending(activities, call())
    await activities.close()
    [created] = service.creates
    config = created.request.execution.spec.execution_config
    assert config.timeout.ToTimedelta() == timedelta(minutes=10)
    assert not config.HasField("temperature")
    assert "authorization" not in created.metadata


async def test_a_retried_attempt_sends_its_new_token_with_the_same_key(
    fake: tuple[FakeStigmer, str],
) -> None:
    service, endpoint = fake
    activities = CallAgentActivity(endpoint)
    await run_pending(activities, call(), environment(token=b"first-token", attempt=1))
    await run_pending(activities, call(), environment(token=b"second-token", attempt=2))
    await activities.close()
    first, second = service.creates
    assert (first.token, second.token) == (b"first-token", b"second-token")
    assert (
        first.request.execution.spec.idempotency_key
        == second.request.execution.spec.idempotency_key
    )
    assert first.execution_id == second.execution_id


async def test_secrets_go_to_runtime_env_and_the_message_keeps_its_placeholders(
    fake: tuple[FakeStigmer, str],
) -> None:
    service, endpoint = fake
    activities = CallAgentActivity(
        endpoint, secret_resolver=resolver({"api_key": SECRET_VALUE, "db.pass": "pw-77"})
    )
    the_call = call(
        message=f"Use {sealed('api_key')} to fetch, then {sealed('api_key')} again",
        env={"AUTH": f"Bearer {sealed('db.pass')}", "REGION": "eu-west-1"},
    )
    await run_pending(activities, the_call)
    await activities.close()
    spec = service.creates[0].request.execution.spec
    # The placeholders stay, sealed again with the call's own seal, which travels as a secret.
    seal = spec.runtime_env[secret_placeholders.SEAL_ENV_NAME].value
    assert secret_placeholders.is_seal(seal) and seal != SCOPE.seal
    again = secret_placeholders.sealed(seal, "api_key")
    assert spec.message == f"Use {again} to fetch, then {again} again"
    env = {name: (value.value, value.is_secret) for name, value in spec.runtime_env.items()}
    assert env == {
        "api_key": (SECRET_VALUE, True),
        "db.pass": ("pw-77", True),
        "AUTH": ("Bearer pw-77", True),
        "REGION": ("eu-west-1", False),
        secret_placeholders.SEAL_ENV_NAME: (seal, True),
    }


async def test_placeholders_from_data_stay_literal_and_resolve_nothing(
    fake: tuple[FakeStigmer, str],
) -> None:
    """Text that only looks like a placeholder (no seal, another seal, an undeclared name)
    reaches the agent as it is, and no secret value leaves the worker."""
    service, endpoint = fake
    activities = CallAgentActivity(
        endpoint, secret_resolver=resolver({"api_key": SECRET_VALUE, "other": SECRET_VALUE})
    )
    forged = (
        "{{secret:api_key}} {{secret:"
        + "f" * 32
        + ":api_key}} "
        + secret_placeholders.sealed(SCOPE.seal, "other")
    )
    await run_pending(activities, call(message=forged, env={"K": forged}))
    await activities.close()
    spec = service.creates[0].request.execution.spec
    assert spec.message == forged
    env = {name: (value.value, value.is_secret) for name, value in spec.runtime_env.items()}
    assert env == {"K": (forged, False)}


async def test_default_resolver_reads_stigmer_secret_env_vars(
    fake: tuple[FakeStigmer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, endpoint = fake
    monkeypatch.setenv("STIGMER_SECRET_OPENAI_KEY", "from-env")
    activities = CallAgentActivity(endpoint)
    await run_pending(activities, call(message=f"key {sealed('openai-key')}"))
    await activities.close()
    value = service.creates[0].request.execution.spec.runtime_env["openai-key"]
    assert (value.value, value.is_secret) == ("from-env", True)


async def test_an_unknown_secret_fails_non_retryable_naming_it_and_creates_nothing(
    fake: tuple[FakeStigmer, str],
) -> None:
    service, endpoint = fake
    activities = CallAgentActivity(endpoint, secret_resolver=resolver({"known": SECRET_VALUE}))
    with pytest.raises(ApplicationError) as raised:
        await environment().run(
            activities.call_agent, call(message=f"{sealed('known')} {sealed('missing_one')}")
        )
    await activities.close()
    assert raised.value.type == "SecretNotFound"
    assert raised.value.non_retryable
    assert "missing_one" in str(raised.value)
    assert SECRET_VALUE not in str(raised.value) + repr(raised.value.details)
    assert service.creates == []


async def test_an_unknown_agent_fails_non_retryable_naming_it(
    fake: tuple[FakeStigmer, str],
) -> None:
    service, endpoint = fake
    activities = CallAgentActivity(endpoint)
    with pytest.raises(ApplicationError) as raised:
        await environment().run(activities.call_agent, call(agent="nobody-home"))
    await activities.close()
    assert raised.value.type == "AgentNotFound"
    assert raised.value.non_retryable
    assert "nobody-home" in str(raised.value)
    assert service.creates == []


async def test_an_agent_of_another_org_is_not_found(fake: tuple[FakeStigmer, str]) -> None:
    _, endpoint = fake
    activities = CallAgentActivity(endpoint)
    with pytest.raises(ApplicationError) as raised:
        await environment().run(activities.call_agent, call(org="other-org"))
    await activities.close()
    assert raised.value.type == "AgentNotFound"


async def test_platform_scope_sends_no_org(fake: tuple[FakeStigmer, str]) -> None:
    service, endpoint = fake
    service.add_agent("helper", org="", scope=reference_pb2.API_RESOURCE_OWNER_SCOPE_PLATFORM)
    activities = CallAgentActivity(endpoint)
    await run_pending(activities, call(agent="helper", scope="platform"))
    await activities.close()
    ref = service.creates[0].request.execution.spec.agent_ref
    assert (ref.org, ref.slug) == ("", "helper")


async def test_an_unknown_scope_is_a_non_retryable_bad_call(fake: tuple[FakeStigmer, str]) -> None:
    _, endpoint = fake
    activities = CallAgentActivity(endpoint)
    with pytest.raises(ApplicationError) as raised:
        await environment().run(activities.call_agent, call(scope="galaxy"))
    await activities.close()
    assert raised.value.type == "InvalidAgentCall"
    assert raised.value.non_retryable


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, True),
        (grpc.StatusCode.INVALID_ARGUMENT, False),
        (grpc.StatusCode.FAILED_PRECONDITION, False),
        (grpc.StatusCode.PERMISSION_DENIED, False),
        (grpc.StatusCode.UNAUTHENTICATED, False),
    ],
)
async def test_grpc_errors_of_create_are_retryable_only_when_transient(
    fake: tuple[FakeStigmer, str], code: grpc.StatusCode, retryable: bool
) -> None:
    service, endpoint = fake
    service.create_failures = [code]
    activities = CallAgentActivity(endpoint)
    with pytest.raises(ApplicationError) as raised:
        await environment().run(activities.call_agent, call())
    await activities.close()
    assert raised.value.type == code.name
    assert raised.value.non_retryable is not retryable
    assert raised.value.details[0]["grpc_status"] == code.name


async def test_a_hung_service_fails_the_call_at_its_deadline_retryably(
    fake: tuple[FakeStigmer, str],
) -> None:
    service, endpoint = fake
    service.create_delay = 5.0
    activities = CallAgentActivity(endpoint, deadline_seconds=0.5)
    with pytest.raises(ApplicationError) as raised:
        await asyncio.wait_for(environment().run(activities.call_agent, call()), 3)
    await activities.close()
    assert raised.value.type == "DEADLINE_EXCEEDED"
    assert not raised.value.non_retryable


async def test_a_service_that_is_down_is_a_retryable_failure() -> None:
    async with serve_fake() as (_, endpoint):
        pass  # The port is free again: nothing listens there.
    activities = CallAgentActivity(endpoint)
    with pytest.raises(ApplicationError) as raised:
        await environment().run(activities.call_agent, call())
    await activities.close()
    assert raised.value.type in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
    assert not raised.value.non_retryable


async def test_logs_carry_ids_and_token_hash_but_never_the_token_or_a_secret(
    fake: tuple[FakeStigmer, str], caplog: pytest.LogCaptureFixture
) -> None:
    service, endpoint = fake
    activities = CallAgentActivity(endpoint, secret_resolver=resolver({"api_key": SECRET_VALUE}))
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs:
        await run_pending(activities, call(message=sealed("api_key"), env={"K": sealed("api_key")}))
        with pytest.raises(ApplicationError):
            await environment().run(activities.call_agent, call(agent="missing"))
        service.create_failures = [grpc.StatusCode.UNAVAILABLE]
        with pytest.raises(ApplicationError):
            await environment().run(activities.call_agent, call())
    await activities.close()

    created = [entry for entry in logs if entry.get("execution_id")]
    assert created, logs
    entry = created[0]
    assert entry["workflow_id"] == "wf-orders-7"
    assert entry["run_id"] == "run-0192"
    assert entry["activity_id"] == "3"
    assert entry["execution_id"] == service.creates[0].execution_id
    assert entry["token_hash"] == token_hash(TOKEN) == TOKEN_SHA256_PREFIX
    assert len(logs) >= 3  # created, agent not found, unavailable

    rendered = "\n".join(repr(entry) for entry in logs) + "\n" + caplog.text
    for leak in [*forbidden(TOKEN), SECRET_VALUE]:
        assert leak not in rendered


# sha256(TOKEN)[:12], computed independently so that a change of the hash would show.
TOKEN_SHA256_PREFIX = hashlib.sha256(TOKEN).hexdigest()[:12]


def forbidden(token: bytes) -> list[str]:
    """Every way the token could appear in text."""
    return [
        repr(token),
        token.decode("latin-1"),
        token.hex(),
        base64.b64encode(token).decode(),
        base64.urlsafe_b64encode(token).decode(),
        token[:16].decode("latin-1"),
    ]


async def test_cancel_agent_call_cancels_and_tolerates_an_ended_execution(
    fake: tuple[FakeStigmer, str],
) -> None:
    service, endpoint = fake
    activities = CallAgentActivity(endpoint)
    first = await environment().run(activities.cancel_agent_call, CancelAgentCallInput("exe-1"))
    again = await environment().run(activities.cancel_agent_call, CancelAgentCallInput("exe-1"))
    assert (first.cancelled, again.cancelled) == (True, False)
    await activities.close()
    assert [request.id for request in service.cancels] == ["exe-1", "exe-1"]
    assert service.cancels[0].reason
