"""The callback token and secret values appear in no log line, read response, history or DB file."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import pathlib
import uuid
from collections.abc import Iterator

import pytest
from ai.stigmer.agentic.agentexecution.v1 import query_pb2
from google.protobuf import json_format
from temporalio.client import Client

from backend.stigmer_service import app, logs
from tests.stigmer_service import caller
from tests.support.service import fast_settings, open_stubs

SECRET = "sk-live-9f8e7d6c5b4a-do-not-leak"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every structlog and stdlib log line of the process, in JSON."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    buffer = io.StringIO()
    logs.configure(level=logging.DEBUG, stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers, root.level = saved[0], saved[1]


def forms(token: bytes) -> list[bytes]:
    return [
        token,
        token.hex().encode(),
        base64.b64encode(token),
        base64.b64encode(token).rstrip(b"="),
        base64.urlsafe_b64encode(token),
        base64.urlsafe_b64encode(token).rstrip(b"="),
    ]


async def test_token_and_secrets_never_leak(
    tmp_path: pathlib.Path, temporal_client: Client, captured_logs: io.StringIO
) -> None:
    settings = fast_settings(tmp_path)
    async with (
        app.running(settings, client=temporal_client) as service,
        caller.running(temporal_client) as queue,
    ):
        stubs = await open_stubs(service)
        try:
            agent = await stubs.agent("leaky", instructions="Use the key.")
            call = caller.CallInput(
                service.address,
                agent.metadata.id,
                "call with {{secret:API_KEY}} #reply=the key is {{secret:API_KEY}}",
                secrets={"API_KEY": SECRET},
            )
            handle = await temporal_client.start_workflow(
                caller.CallerWorkflow.run, call, id=f"leak-{uuid.uuid4()}", task_queue=queue
            )
            result = await asyncio.wait_for(handle.result(), 30)
            assert result["output"] == "the key is ***"
            created = await asyncio.wait_for(caller.created.get(), 5)
            token = await asyncio.wait_for(caller.tokens.get(), 5)
            execution_id = created.metadata.id
            responses = [created]
            responses.append(
                await stubs.queries.GetAgentExecution(
                    query_pb2.GetAgentExecutionRequest(id=execution_id)
                )
            )
            listed = await stubs.queries.ListAgentExecutions(query_pb2.ListAgentExecutionsRequest())
            responses.extend(listed.executions)
            responses.extend(
                [
                    e
                    async for e in stubs.queries.WatchAgentExecution(
                        query_pb2.WatchAgentExecutionRequest(id=execution_id)
                    )
                ]
            )
            history = await temporal_client.get_workflow_handle(
                f"agent-execution-{execution_id}"
            ).fetch_history()
        finally:
            await stubs.channel.close()
    stored = responses[1]
    assert stored.status.callback.token_present
    assert stored.spec.callback_token == b""
    assert stored.spec.runtime_env["API_KEY"].value == "***"
    assert "{{secret:API_KEY}}" in stored.spec.message  # The placeholder, not the value.
    haystacks: dict[str, bytes] = {
        "logs": captured_logs.getvalue().encode(),
        "execution workflow history": history.to_json().encode(),
        "database file": b"".join(p.read_bytes() for p in tmp_path.glob("stigmer.db*")),
    }
    for index, response in enumerate(responses):
        haystacks[f"response {index} (bytes)"] = response.SerializeToString()
        haystacks[f"response {index} (json)"] = json_format.MessageToJson(response).encode()
    assert b"execution_id" in haystacks["logs"]  # The capture did see the service's logs.
    needles = [*forms(token), SECRET.encode(), base64.b64encode(SECRET.encode())]
    for where, haystack in haystacks.items():
        for needle in needles:
            assert needle not in haystack, f"leak in {where}"
