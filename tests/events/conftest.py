"""Fixtures of the event tests: a broker on the session's NATS, a worker with the test listener."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.worker import Worker

from backend.common import nats_server, sandbox
from backend.workflow_runner.events import broker as broker_module
from backend.workflow_runner.events.activities import EventActivities
from backend.workflow_runner.events.router import run_router
from backend.workflow_runner.worker import build_worker
from tests.events.listening import ListeningWorkflow


@pytest_asyncio.fixture
async def settings(embedded_nats: nats_server.NatsServer) -> broker_module.BrokerSettings:
    return broker_module.BrokerSettings(url=embedded_nats.url)


@pytest_asyncio.fixture
async def broker(
    settings: broker_module.BrokerSettings,
) -> AsyncIterator[broker_module.Broker]:
    connected = await broker_module.connect(settings, "tests")
    yield connected
    await connected.close()


@pytest_asyncio.fixture
async def listening_worker(
    temporal_client: Client, task_queue: str, settings: broker_module.BrokerSettings
) -> AsyncIterator[Worker]:
    """A worker of ListeningWorkflow with the real event activities."""
    activities = EventActivities(settings)
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[ListeningWorkflow],
        activities=activities.all(),
        max_concurrent_workflow_tasks=50,
        # As the runner's worker: our modules passed through (the contract's dataclasses are
        # decoded with their module's globals).
        workflow_runner=sandbox.workflow_runner("tests"),
    ) as worker:
        yield worker
    await activities.close()


class RunningRouter:
    """An in-process router (its own consumer name, so tests do not share one's position)."""

    def __init__(
        self, broker: broker_module.Broker, client: Client, consumer: str, ack_wait: float
    ) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            run_router(broker, client, self.stop, ack_wait, consumer=consumer)
        )

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 15)


@pytest_asyncio.fixture
async def start_router(
    broker: broker_module.Broker, temporal_client: Client
) -> AsyncIterator[object]:
    started: list[RunningRouter] = []

    def start(consumer: str | None = None, ack_wait: float = 5.0) -> RunningRouter:
        router = RunningRouter(
            broker, temporal_client, consumer or f"router-{uuid.uuid4().hex[:8]}", ack_wait
        )
        started.append(router)
        return router

    yield start
    for router in started:
        if not router.task.done():
            await router.close()


@pytest_asyncio.fixture
async def dsl_worker(
    temporal_client: Client,
    task_queue: str,
    settings: broker_module.BrokerSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Worker]:
    """The runner's own worker (build_worker) with NATS_URL set: DslWorkflow and the real event
    activities, as `workflow-runner worker` runs them."""
    monkeypatch.setenv(broker_module.URL_ENV, settings.url)
    activities = EventActivities(settings)
    worker = build_worker(temporal_client, task_queue, agent_activities=[], events=activities)
    async with worker:
        yield worker
    await activities.close()
