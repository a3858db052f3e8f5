"""Watches are pushed across replicas on PostgreSQL: the watch is served by one service instance,
the execution runs on another, and only the database's NOTIFY can tell the first of the second's
writes (the safety poll is a minute away). The listener reconnects when its connection drops."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import pytest_asyncio
from ai.stigmer.agentic.agentexecution.v1 import query_pb2
from temporalio.client import Client

from backend.stigmer_service import app
from backend.stigmer_service.store import changes
from backend.stigmer_service.store.base import now
from backend.stigmer_service.store.records import STEP_ASSISTANT_MESSAGE, NewExecution, StepRecord
from tests.stigmer_service import pushed
from tests.support import postgres
from tests.support.agents import OFFLINE_MODEL, ORG
from tests.support.eventually import eventually
from tests.support.service import Stubs, fast_settings, open_stubs

WAIT = 60


@dataclasses.dataclass
class Replicas:
    watched: Stubs  # Serves the watch; runs no worker.
    running: Stubs  # Runs the executions.
    db_url: str


@pytest_asyncio.fixture
async def replicas(tmp_path: pathlib.Path, temporal_client: Client) -> AsyncIterator[Replicas]:
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(postgres.fresh_database("stigmer_push"))
        running = dataclasses.replace(
            fast_settings(tmp_path, watch_poll_interval=pushed.NO_POLL), db_url=url
        )
        # The same database, key and task queue: two replicas of one deployment.
        watched = dataclasses.replace(running)
        services = []
        for settings, worker in ((running, True), (watched, False)):
            service = await stack.enter_async_context(
                app.running(settings, client=temporal_client, run_worker=worker)
            )
            stubs = await open_stubs(service)
            stack.push_async_callback(stubs.channel.close)
            services.append(stubs)
        yield Replicas(watched=services[1], running=services[0], db_url=url)


async def test_a_watch_hears_the_steps_another_replica_records(
    replicas: Replicas, tmp_path: pathlib.Path
) -> None:
    agent_id = await pushed.desk(replicas.running)
    execution_id = await pushed.start(replicas.running, agent_id, tmp_path / "comments.jsonl")
    arrivals = await asyncio.wait_for(pushed.follow(replicas.watched, execution_id), WAIT)
    pushed.assert_pushed(arrivals)
    # The watching replica wrote nothing: it heard every change from the database.
    assert replicas.watched.service.store.changes.published == 0
    assert replicas.watched.service.store.changes.heard > 0


async def _listeners(url: str) -> list[int]:
    """The pids of the change listeners' connections to this test's database."""
    admin = await asyncpg.connect(postgres.ADMIN_URL)
    try:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = $2",
            changes.APPLICATION_NAME,
            url.rsplit("/", 1)[1],
        )
    finally:
        await admin.close()
    return [row["pid"] for row in rows]


async def test_the_listener_reconnects_after_its_connection_drops(replicas: Replicas) -> None:
    agent = await replicas.watched.agent("echo", model=OFFLINE_MODEL)
    # Written to the store alone (no workflow): only the test changes this execution.
    created = await replicas.watched.service.store.create_execution(
        NewExecution(
            org=ORG,
            name="",
            labels={},
            agent_id=agent.metadata.id,
            session_id="ses-push",
            message="hi",
            config={},
            caller={},
            runtime_env={},
            token=b"",
            idempotency_key="",
        )
    )
    execution_id = created.execution.id
    before = await eventually(lambda: _two(replicas.db_url), timeout=10)
    admin = await asyncpg.connect(postgres.ADMIN_URL)
    try:
        for pid in before:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()

    async def reconnected() -> None:
        after = await _two(replicas.db_url)
        assert not set(after) & set(before)

    await eventually(reconnected, timeout=20)
    # A write of the running replica reaches a watch of the other through the new connection.
    watch = replicas.watched.queries.WatchAgentExecution(
        query_pb2.WatchAgentExecutionRequest(id=execution_id)
    )
    first = await pushed.read(watch)
    store = replicas.running.service.store
    await store.record_step(
        execution_id, StepRecord(0, STEP_ASSISTANT_MESSAGE, now(), result="pushed")
    )
    second = await pushed.read(watch, pushed.PUSH_BOUND)
    assert second.metadata.version > first.metadata.version
    assert [s.result for s in second.status.steps] == ["pushed"]
    watch.cancel()


async def _two(url: str) -> list[int]:
    pids = await _listeners(url)
    assert len(pids) == 2, pids  # One per replica.
    return pids
