"""Acceptance: the service dies between the agent's end and the callback; after a restart the
callback is delivered, the metric counts it, and the waiting-callers view is empty again."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from temporalio.client import Client

from backend.common import temporal_dev_server
from backend.workflow_runner.models import DslRunInput
from tests.observability.helpers import AGENT, one_call, sample, scrape, wait_sample
from tests.support import stack as processes
from tests.support.agents import ORG
from tests.support.processes import child_env, wait_for_log
from tests.support.stack import Stack

# Short timers, and the test hook that holds the first callback attempt back long enough for the
# kill.
SERVICE_ENV = processes.FAST_SERVICE_ENV | {"STIGMER_TEST_CALLBACK_DELAY": "120"}


@pytest_asyncio.fixture
async def stack(tmp_path: pathlib.Path) -> AsyncIterator[tuple[Stack, str, str]]:
    """The real processes, with the service's and the worker's metrics endpoints."""
    service_metrics = f"127.0.0.1:{temporal_dev_server.free_port()}"
    worker_metrics = f"127.0.0.1:{temporal_dev_server.free_port()}"
    async with processes.running(
        tmp_path,
        agent=AGENT,
        org=ORG,
        queue_prefix="observability",
        service_env=SERVICE_ENV | {"STIGMER_METRICS_LISTEN": service_metrics},
        worker_env={"WORKFLOW_RUNNER_METRICS_LISTEN": worker_metrics},
    ) as stack:
        yield stack, service_metrics, worker_metrics


async def callers(stack: Stack) -> list[dict[str, Any]]:
    """`stigmer-service callers --output json`, run as the operator would."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "backend.stigmer_service.main",
        "callers",
        "--output",
        "json",
        env=child_env({"STIGMER_ENDPOINT": stack.service_address}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


async def test_callback_survives_a_service_crash_after_the_agent_ended(
    stack: tuple[Stack, str, str],
) -> None:
    system, service_metrics, worker_metrics = stack
    client = await Client.connect(system.temporal.address)
    handle = await client.start_workflow(
        "DslWorkflow",
        DslRunInput(one_call("survive the crash"), {}),
        id=f"recovery-{uuid.uuid4().hex[:8]}",
        task_queue=system.worker_task_queue,
    )

    # The agent has answered and its end is written; the callback is held back by the hook.
    await wait_for_log(system.service, "callback held back by the test hook", timeout=40)
    waiting = await callers(system)
    assert len(waiting) == 1, waiting
    row = waiting[0]
    assert row["phase"] == "COMPLETED"
    assert row["callback_state"] == "WAITING"
    assert row["caller_workflow_id"] == handle.id
    assert row["caller_activity_id"]
    assert row["age_seconds"] >= 0
    assert len(row["token_hash"]) == 12
    page = await scrape(service_metrics)
    assert sample(page, "stigmer_callers_waiting") == 1.0
    assert sample(page, "stigmer_executions", 'phase="COMPLETED"') == 1.0
    assert sample(page, "stigmer_callbacks_total", 'outcome="completed"') == 0.0
    assert sample(page, "stigmer_model_call_seconds_count", 'provider="offline"') == 1.0

    system.service.kill()  # kill -9: the delivery attempt dies with it.
    assert not system.service.running
    await system.start_service()

    # The restarted service retries the delivery once the dead attempt's heartbeat times out.
    result = await asyncio.wait_for(handle.result(), 45)
    assert result["answer"] == f"{AGENT}: survive the crash"
    assert result["execution"] == row["execution_id"]

    page = await wait_sample(service_metrics, "stigmer_callbacks_total", 'outcome="completed"', 1.0)
    assert sample(page, "stigmer_callers_waiting") == 0.0
    assert sample(page, "stigmer_oldest_waiting_caller_age_seconds") == 0.0
    assert sample(page, "stigmer_callbacks_total", 'outcome="error"') == 0.0
    latency = sample(page, "stigmer_callback_latency_seconds_count")
    assert latency == 1.0
    assert await callers(system) == []

    worker_page = await scrape(worker_metrics)
    assert sample(worker_page, "workflow_runner_agent_calls_total", 'outcome="created"') == 1.0

    print("\nservice metrics after recovery:\n" + page)
    print("worker metrics:\n" + worker_page)
    # One correlation id in the runner's lines and in the service's (both processes' logs).
    handshake = json.loads(
        next(
            line
            for line in system.worker.log_text().splitlines()
            if "waiting for its callback" in line
        )
    )["handshake_id"]
    service_lines = [
        json.loads(line)
        for line in system.service.log_text().splitlines()
        if line.startswith("{") and handshake in line
    ]
    events = {line["event"] for line in service_lines}
    assert {"execution created", "execution ended", "callback delivered"} <= events, events
    assert any(line.get("handshake_id") == handshake for line in service_lines)
