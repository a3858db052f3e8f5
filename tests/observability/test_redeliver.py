"""The waiting-callers view and redelivery, in-process: a callback that failed for a transient
reason shows up in `callers`, `redeliver` sends it again, and the caller resumes."""

from __future__ import annotations

import asyncio
import json
import pathlib
import uuid
from typing import Any

import pytest
from ai.stigmer.agentic.agentexecution.v1 import query_pb2, status_pb2
from temporalio.client import Client
from typer.testing import CliRunner

from backend.stigmer_service import app
from backend.stigmer_service.cli import app as cli
from backend.stigmer_service.execution import callback
from tests.stigmer_service import caller
from tests.support.eventually import eventually
from tests.support.service import fast_settings, open_stubs


async def invoke(*args: str) -> Any:
    """Runs the CLI in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


async def test_a_failed_callback_is_listed_and_redelivered(
    temporal_client: Client, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_send = callback.send

    async def unreachable(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("temporal frontend unreachable")

    # One attempt only, and it fails as it would while Temporal is down.
    monkeypatch.setattr(callback, "send", unreachable)
    settings = fast_settings(tmp_path, callback_max_attempts=1)
    caller.drain()
    queue = f"callers-{uuid.uuid4()}"
    async with app.running(settings, client=temporal_client) as service:
        stubs = await open_stubs(service)
        endpoint = service.address
        agent = await stubs.agent(slug="echo", model="offline/echo")
        async with caller.worker(temporal_client, queue):
            handle = await temporal_client.start_workflow(
                caller.CallerWorkflow.run,
                caller.CallInput(endpoint, agent.metadata.id, "come back"),
                id=f"caller-{uuid.uuid4().hex[:8]}",
                task_queue=queue,
            )
            created = await asyncio.wait_for(caller.created.get(), 20)
            execution_id = created.metadata.id

            async def callback_failed() -> None:
                execution = await stubs.queries.GetAgentExecution(
                    query_pb2.GetAgentExecutionRequest(id=execution_id)
                )
                assert (
                    execution.status.callback.state == status_pb2.CALLBACK_STATE_FAILED
                ), execution.status

            await eventually(callback_failed, timeout=20)

            listed = await invoke("callers", "--endpoint", endpoint, "--output", "json")
            assert listed.exit_code == 0, listed.output
            rows = json.loads(listed.output)
            assert [r["execution_id"] for r in rows] == [execution_id]
            assert rows[0]["callback_state"] == "FAILED"
            assert rows[0]["phase"] == "COMPLETED"
            assert rows[0]["attempts"] == 1
            assert "temporal frontend unreachable" in rows[0]["last_error"]
            assert rows[0]["caller_workflow_id"] == handle.id
            text = await invoke("callers", "--endpoint", endpoint)
            assert execution_id in text.output and "FAILED" in text.output, text.output
            registry = service.metrics.registry
            assert registry.get_sample_value("stigmer_callbacks_total", {"outcome": "error"}) == 1

            # Temporal is back: the operator sends the callback again.
            monkeypatch.setattr(callback, "send", real_send)
            redelivered = await invoke("redeliver", execution_id, "--endpoint", endpoint)
            assert redelivered.exit_code == 0, redelivered.output
            result = await asyncio.wait_for(handle.result(), 20)
            assert result["output"] == "echo: come back"
            assert result["execution_id"] == execution_id

            async def no_caller_waits() -> None:
                waiting = await invoke("callers", "--endpoint", endpoint, "-o", "json")
                assert waiting.output.strip() == "[]", waiting.output

            await eventually(no_caller_waits, timeout=10)
            empty = await invoke("callers", "--endpoint", endpoint)
            assert "no caller is waiting" in empty.output
            assert (
                registry.get_sample_value("stigmer_callbacks_total", {"outcome": "completed"}) == 1
            )

            # Delivered: nothing left to redeliver.
            again = await invoke("redeliver", execution_id, "--endpoint", endpoint)
            assert again.exit_code == 1
            assert "FAILED_PRECONDITION" in again.output
        await stubs.channel.close()


async def test_redeliver_refuses_a_running_execution_and_an_unknown_one(
    temporal_client: Client, tmp_path: pathlib.Path
) -> None:
    async with app.running(fast_settings(tmp_path), client=temporal_client) as service:
        stubs = await open_stubs(service)
        missing = await invoke("redeliver", "aex-missing", "--endpoint", service.address)
        assert missing.exit_code == 1 and "NOT_FOUND" in missing.output
        await stubs.channel.close()
