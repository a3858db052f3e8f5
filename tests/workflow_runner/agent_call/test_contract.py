"""The pure parts of the agent-call contract: timeouts, retry classification, scopes, secret names."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from ai.stigmer.commons.apiresource import reference_pb2
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
    TimeoutType,
)

from backend.workflow_runner.agent_call import convert, errors, secrets
from backend.workflow_runner.agent_call.models import (
    NON_RETRYABLE_ERROR_TYPES,
    CallAgentInput,
    CallAgentOutput,
    SecretScope,
)
from backend.workflow_runner.agent_call.workflow_api import (
    HEARTBEAT_TIMEOUT,
    RETRY_POLICY,
    _known_execution_id,
    start_to_close_timeout,
)


@pytest.mark.parametrize(
    ("timeout_seconds", "expected"),
    [
        (None, timedelta(minutes=11)),  # default 10 min + 10 %
        (60.0, timedelta(seconds=90)),  # the 30 s floor
        (3600.0, timedelta(seconds=3960)),
    ],
)
def test_start_to_close_is_the_execution_timeout_plus_a_margin(
    timeout_seconds: float | None, expected: timedelta
) -> None:
    call = CallAgentInput(agent="a", message="m", timeout_seconds=timeout_seconds)
    assert start_to_close_timeout(call) == expected
    assert start_to_close_timeout(call) > timedelta(seconds=convert.timeout_seconds(call))


def test_the_heartbeat_timeout_leaves_room_for_the_services_10s_heartbeats() -> None:
    assert HEARTBEAT_TIMEOUT.total_seconds() >= 30


def test_every_non_retryable_grpc_status_and_agent_error_stops_the_retry_policy() -> None:
    stopping = set(RETRY_POLICY.non_retryable_error_types or [])
    assert {code.name for code in errors.NON_RETRYABLE_CODES} <= stopping
    assert {"AgentNotFound", "SecretNotFound", "ExecutionTimeout", "ModelError"} <= stopping
    assert not {code.name for code in errors.RETRYABLE_CODES} & stopping
    assert set(NON_RETRYABLE_ERROR_TYPES) == stopping


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("", reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION),
        ("organization", reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION),
        ("platform", reference_pb2.API_RESOURCE_OWNER_SCOPE_PLATFORM),
        ("identity-account", reference_pb2.API_RESOURCE_OWNER_SCOPE_IDENTITY_ACCOUNT),
        ("API_RESOURCE_OWNER_SCOPE_PLATFORM", reference_pb2.API_RESOURCE_OWNER_SCOPE_PLATFORM),
    ],
)
def test_scopes(scope: str, expected: int) -> None:
    assert convert.owner_scope(scope) == expected


def test_secret_names_map_to_env_vars() -> None:
    assert secrets.secret_env_var("openai-key") == "STIGMER_SECRET_OPENAI_KEY"
    assert secrets.secret_env_var("db.pass") == "STIGMER_SECRET_DB_PASS"
    scope = SecretScope("0" * 32, ("a", "b"))
    placeholder = scope.placeholders()
    text = f"{placeholder['b']} {placeholder['a']} {placeholder['b']}"
    assert secrets.referenced_secrets([text], scope) == ["b", "a"]
    assert secrets.substitute(text, scope, {"a": "1", "b": "2"}) == "2 1 2"


def test_the_completion_payload_maps_to_the_output_dataclass() -> None:
    payload = {"execution_id": "exe-1", "output": "hi", "agent": "w", "agent_id": "agt-w"}
    # Without `steps` (an older service): an empty list.
    assert convert.call_output(payload) == CallAgentOutput("exe-1", "hi", "w", "agt-w", "", [])
    step = {"index": 0, "kind": "tool_call", "tool": "t.x", "error": False, "duration_ms": 3}
    assert convert.call_output(payload | {"steps": [step]}).steps == [step]


def test_grpc_errors_keep_their_status_name_as_type() -> None:
    class Rpc(grpc.aio.AioRpcError):
        def __init__(self, code: grpc.StatusCode) -> None:
            super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="boom")

    failure = errors.from_grpc_error(Rpc(grpc.StatusCode.INTERNAL), "creating")
    assert (failure.type, failure.non_retryable) == ("INTERNAL", False)
    failure = errors.from_grpc_error(Rpc(grpc.StatusCode.NOT_FOUND), "creating")
    assert (failure.type, failure.non_retryable) == ("NOT_FOUND", True)
    assert "boom" in str(failure)


def activity_error(cause: BaseException) -> ActivityError:
    error = ActivityError(
        "activity failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker",
        activity_type="call_agent",
        activity_id="1",
        retry_state=None,
    )
    error.__cause__ = cause
    return error


def test_the_execution_to_clean_up_comes_from_the_recorded_details() -> None:
    timed_out = TimeoutError(
        "heartbeat", type=TimeoutType.HEARTBEAT, last_heartbeat_details=[{"execution_id": "e-1"}]
    )
    assert _known_execution_id(activity_error(timed_out)) == "e-1"
    cancelled = CancelledError("cancelled", {"execution_id": "e-2"})
    assert _known_execution_id(activity_error(cancelled)) == "e-2"
    # The service's own heartbeats carry no details; then there is nothing to clean up.
    assert _known_execution_id(activity_error(CancelledError("cancelled"))) == ""
    failed = ApplicationError("agent failed", {"execution_id": "e-3"}, type="ModelError")
    assert _known_execution_id(activity_error(failed)) == ""
