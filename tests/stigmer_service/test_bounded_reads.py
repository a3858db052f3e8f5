"""Findings 10 and 17: watches are bounded (count, duration, one shared poller per process);
lists page by keyset (no skip, no repeat under inserts) and read messages in one query."""

from __future__ import annotations

import asyncio
import base64
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
import sqlalchemy as sa
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, command_pb2, query_pb2, spec_pb2
from ai.stigmer.commons.apiresource import metadata_pb2
from temporalio.client import Client

from backend.stigmer_service import app
from tests.support.agents import OFFLINE_MODEL
from tests.support.eventually import eventually
from tests.support.service import Stubs, fast_settings, open_stubs


@pytest_asyncio.fixture
async def idle(tmp_path: pathlib.Path, temporal_client: Client) -> AsyncIterator[Stubs]:
    """No execution worker: executions stay PENDING for as long as the test needs."""
    settings = fast_settings(tmp_path, max_watches=2, max_watch_seconds=2.0)
    async with app.running(settings, client=temporal_client, run_worker=False) as service:
        stubs = await open_stubs(service)
        try:
            yield stubs
        finally:
            await stubs.channel.close()


async def create(stubs: Stubs, agent_id: str, message: str = "hello") -> str:
    created = await stubs.executions.CreateAgentExecution(
        command_pb2.CreateAgentExecutionRequest(
            execution=api_pb2.AgentExecution(
                metadata=metadata_pb2.ApiResourceMetadata(org="acme"),
                spec=spec_pb2.AgentExecutionSpec(agent_id=agent_id, message=message),
            )
        )
    )
    return created.metadata.id


def watch(stubs: Stubs, execution_id: str) -> Any:
    return stubs.queries.WatchAgentExecution(query_pb2.WatchAgentExecutionRequest(id=execution_id))


async def test_watches_are_limited_per_process_and_in_time(idle: Stubs) -> None:
    agent = await idle.agent("echo", model=OFFLINE_MODEL)
    execution_id = await create(idle, agent.metadata.id)
    first, second = watch(idle, execution_id), watch(idle, execution_id)
    assert (await first.read()).metadata.id == execution_id
    assert (await second.read()).metadata.id == execution_id
    third = watch(idle, execution_id)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await third.read()
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # A change reaches both watchers through the shared poller.
    await idle.service.store.append_message(execution_id, 2, "progress")
    assert [m.content for m in (await first.read()).status.messages][-1] == "progress"
    assert [m.content for m in (await second.read()).status.messages][-1] == "progress"
    # An ended watch frees its place.
    first.cancel()

    async def admitted() -> None:
        again = watch(idle, execution_id)
        try:
            assert (await again.read()).metadata.id == execution_id
        finally:
            again.cancel()

    await eventually(admitted, timeout=5)
    # The maximum duration ends a watch of an execution that never ends.
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        while True:
            await second.read()
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_many_watches_share_one_poll_query(idle: Stubs) -> None:
    agent = await idle.agent("echo", model=OFFLINE_MODEL)
    ids = [await create(idle, agent.metadata.id, f"m{i}") for i in range(2)]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = idle.service.store.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        calls = [watch(idle, i) for i in ids]
        for call in calls:
            await call.read()
        statements.clear()
        await asyncio.sleep(1.0)
        for call in calls:
            call.cancel()
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    polls = [s for s in statements if "executions.version" in s]
    # One query per poll interval (0.05 s) for both watches, not one per watch.
    assert 0 < len(polls) <= 1.0 / 0.05 + 2
    assert all(s.count("IN (") == 1 for s in polls)


async def test_keyset_pages_neither_skip_nor_repeat_under_inserts(idle: Stubs) -> None:
    agent = await idle.agent("echo", model=OFFLINE_MODEL)
    original = [await create(idle, agent.metadata.id, f"m{i}") for i in range(7)]
    seen: list[str] = []
    token = ""
    while True:
        page = await idle.queries.ListAgentExecutions(
            query_pb2.ListAgentExecutionsRequest(page_size=3, page_token=token)
        )
        seen += [e.metadata.id for e in page.executions]
        token = page.next_page_token
        if not token:
            break
        # Newer rows arrive between pages; the listing started before them.
        await create(idle, agent.metadata.id, "newer")
        await create(idle, agent.metadata.id, "newer")
    assert seen == list(reversed(original))


async def test_a_list_reads_all_messages_in_one_query(idle: Stubs) -> None:
    agent = await idle.agent("echo", model=OFFLINE_MODEL)
    ids = [await create(idle, agent.metadata.id, f"m{i}") for i in range(5)]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = idle.service.store.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        page = await idle.queries.ListAgentExecutions(query_pb2.ListAgentExecutionsRequest())
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert [e.metadata.id for e in page.executions] == list(reversed(ids))
    assert [[m.content for m in e.status.messages] for e in page.executions] == [
        [f"m{i}"] for i in reversed(range(5))
    ]
    assert len([s for s in statements if "execution_messages" in s]) == 1


@pytest.mark.parametrize(
    "token",
    [
        "x",
        "50",
        base64.urlsafe_b64encode(b'{"t": "2024-01-01T00:00:00+00:00"}').decode(),
        base64.urlsafe_b64encode(b'{"t": "nope", "i": "aex-1"}').decode(),
        base64.urlsafe_b64encode(b'{"t": "2024-01-01T00:00:00+00:00", "i": "a\\u0000"}').decode(),
        base64.urlsafe_b64encode(b'{"t": "0001-01-01T00:00:00+14:00", "i": "aex-1"}').decode(),
        base64.urlsafe_b64encode(b"[1]").decode(),
    ],
)
async def test_a_bad_page_token_is_invalid_argument(idle: Stubs, token: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await idle.queries.ListAgentExecutions(
            query_pb2.ListAgentExecutionsRequest(page_token=token)
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (raised.value.details() or "").startswith("page_token:")
