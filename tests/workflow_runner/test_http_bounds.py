"""The `call: http` activity's bounds (issue 14, finding 11), through the real DSL worker against
local servers: body size, total time, redirects across origins, the egress policy, heartbeats."""

from __future__ import annotations

import time
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from backend.common import egress
from backend.workflow_runner.activities import call_http
from backend.workflow_runner.dsl import errors
from backend.workflow_runner.models import HttpCallInput
from tests.support.recording_server import recording_server
from tests.workflow_runner import scenarios
from tests.workflow_runner.test_http_secrets import _run

pytestmark = pytest.mark.timeout(90)


def _document(endpoint: str, method: str = "get", extra: str = "") -> dict[str, Any]:
    """One call inside a try (one attempt), whose error becomes the workflow's output."""
    return scenarios.inline(
        f"""
use:
  secrets: [T]
do:
  - guarded:
      try:
        - call:
            call: http
            with:
              method: {method}
              endpoint: {endpoint}
{extra}
      catch:
        as: failure
        do:
          - keep: {{set: {{error: "${{ $failure }}"}}}}
"""
    )


async def _error(client: Client, task_queue: str, document: dict[str, Any]) -> dict[str, Any]:
    _handle, result = await _run(client, task_queue, document, None)
    assert isinstance(result, dict) and "error" in result, result
    error: dict[str, Any] = result["error"]
    assert error["type"] == errors.COMMUNICATION
    return error


async def test_a_body_over_the_limit_is_a_communication_error(
    temporal_client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOW_RUNNER_HTTP_MAX_BODY_BYTES", "1000")
    with recording_server() as server:
        _, small = await _run(
            temporal_client, task_queue, _document(server.url + "/bytes/1000"), None
        )
        declared = await _error(temporal_client, task_queue, _document(server.url + "/bytes/1001"))
        streamed = await _error(
            temporal_client, task_queue, _document(server.url + "/bytes/5000?stream=1")
        )
    assert small == "x" * 1000
    for error in (declared, streamed):
        assert "response body exceeds 1000 bytes" in error["detail"]


async def test_an_output_too_large_for_history_fails_the_call(
    temporal_client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOW_RUNNER_HTTP_MAX_BODY_BYTES", str(3_000_000))
    with recording_server() as server:
        error = await _error(temporal_client, task_queue, _document(server.url + "/bytes/2000000"))
    assert "bytes as JSON, over 1900000" in error["detail"]


async def test_a_trickling_response_ends_at_the_total_time_limit(
    temporal_client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKFLOW_RUNNER_HTTP_TOTAL_TIMEOUT", "1.5")
    started = time.monotonic()
    with recording_server() as server:
        error = await _error(temporal_client, task_queue, _document(server.url + "/trickle"))
    assert "no complete response within 1.5s" in error["detail"]
    assert time.monotonic() - started < 20


async def test_redirects_never_carry_credentials_or_bodies_to_another_origin(
    temporal_client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_SECRET_T", "tok-redirect-91")
    headers = """              redirect: true
              headers:
                authorization: Bearer abc
                x-api-key: ${ $secrets.T }
                cookie: session=s1
                x-plain: keep"""
    with recording_server() as a, recording_server() as b:
        follow = f"{a.url}/redirect?to={b.url}/echo&code=302"
        _, result = await _run(temporal_client, task_queue, _document(follow, extra=headers), None)
        assert result["headers"]["x-plain"] == "keep"
        sent = b.received[0].headers
        assert {"authorization", "x-api-key", "cookie"}.isdisjoint(sent), sent
        # The same origin keeps them, and a 307 keeps the body there.
        same = f"{a.url}/redirect?to={a.url}/echo&code=307"
        body = headers + "\n              body: {order: 7}"
        _, result = await _run(
            temporal_client, task_queue, _document(same, "post", extra=body), None
        )
        assert result["headers"]["x-api-key"] == "***"  # Sent, then masked in the echo.
        assert a.received[-1].headers["authorization"] == "Bearer abc"
        assert result["body"] == '{"order":7}'
        # A 307 to another origin would resend the body there: refused.
        before = len(b.received)
        cross = f"{a.url}/redirect?to={b.url}/echo&code=307"
        error = await _error(temporal_client, task_queue, _document(cross, "post", extra=body))
    assert "would resend the request body there" in error["detail"]
    assert len(b.received) == before


async def test_the_egress_policy_refuses_metadata_and_configured_addresses(
    temporal_client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.monotonic()
    metadata = await _error(
        temporal_client, task_queue, _document("http://169.254.169.254/latest/meta-data/")
    )
    assert "egress policy refuses 169.254.169.254" in metadata["detail"]
    assert time.monotonic() - started < 20  # Refused before any connection attempt.
    with recording_server() as server:
        # After DNS: `localhost` resolves to a denied address.
        local = server.url.replace("127.0.0.1", "localhost") + "/echo"
        monkeypatch.setenv("WORKFLOW_RUNNER_HTTP_EGRESS_DENY", "127.0.0.0/8, ::1/128")
        denied = await _error(temporal_client, task_queue, _document(local))
        assert "egress policy refuses localhost" in denied["detail"]
        assert server.received == []
        monkeypatch.setenv("WORKFLOW_RUNNER_HTTP_EGRESS_ALLOW", "127.0.0.1, ::1")
        _, allowed = await _run(temporal_client, task_queue, _document(local), None)
    assert allowed["query"] == {}


def test_the_policy_reads_cidrs_and_sees_through_ipv4_mapped_addresses() -> None:
    policy = egress.EgressPolicy.parse(deny="10.0.0.0/8", allow="169.254.170.2")
    assert policy.refuses("169.254.169.254")
    assert policy.refuses("::ffff:169.254.169.254")
    assert policy.refuses("fe80::1%eth0")
    assert policy.refuses("fd00:ec2::254")
    assert policy.refuses("10.1.2.3")
    assert not policy.refuses("169.254.170.2")
    assert not policy.refuses("127.0.0.1")
    assert not policy.refuses("::1")
    with pytest.raises(ValueError, match="not-a-cidr"):
        egress.EgressPolicy.parse(deny="not-a-cidr")


async def test_the_activity_heartbeats_while_it_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLOW_RUNNER_HTTP_TOTAL_TIMEOUT", "1")
    beats: list[Any] = []
    environment = ActivityEnvironment()
    environment.on_heartbeat = lambda *details: beats.append(details)
    with recording_server() as server, pytest.raises(ApplicationError):
        await environment.run(call_http, HttpCallInput("GET", server.url + "/trickle"))
    assert beats


async def test_a_failed_call_outside_a_try_fails_the_workflow(
    temporal_client: Client, task_queue: str
) -> None:
    document = scenarios.inline(
        """
do:
  - call: {call: http, with: {method: get, endpoint: "http://169.254.169.254/"}}
"""
    )
    _handle, result = await _run(temporal_client, task_queue, document, None)
    assert isinstance(result, WorkflowFailureError)
