"""The agent call's hot path in the store (SQLite and PostgreSQL): what it returns without reading
back must be what a read returns; the end's driver-level transaction is atomic and guarded."""

from __future__ import annotations

import dataclasses

from backend.stigmer_service import states
from backend.stigmer_service.store.records import ExecutionRecord, TokenUsage
from backend.stigmer_service.store.repository import Store
from tests.stigmer_service import test_store
from tests.stigmer_service.test_store import agent_id, new

# The store on a fresh SQLite file and on a fresh PostgreSQL database, as test_store's tests get it.
store = test_store.store


def _comparable(record: ExecutionRecord) -> ExecutionRecord:
    # Reads of a whole execution carry its steps; the hot path's records never have any.
    return dataclasses.replace(record, steps=[])


async def test_a_created_execution_is_returned_as_a_read_would_return_it(store: Store) -> None:
    created = await store.create_execution(
        new(await agent_id(store), key="k-1", token=b"tok", API_KEY=("s3cret", True))
    )
    assert created.created
    assert _comparable(created.execution) == await store.get_execution(created.execution.id)


async def test_start_run_moves_to_running_once_and_reads_the_messages(store: Store) -> None:
    execution = (await store.create_execution(new(await agent_id(store)))).execution
    running, started = await store.start_run(execution.id)
    assert started and running.phase == states.PHASE_RUNNING
    assert _comparable(running) == await store.get_execution(execution.id)
    assert [(m.role, m.content) for m in running.messages] == [(states.ROLE_USER, "hi")]
    again, started_again = await store.start_run(execution.id)  # A retried attempt.
    assert not started_again and again.phase == states.PHASE_RUNNING
    assert again.version == running.version


async def test_the_end_returns_what_a_read_for_delivery_returns(store: Store) -> None:
    execution = (await store.create_execution(new(await agent_id(store), token=b"t-1"))).execution
    before, _ = await store.start_run(execution.id)
    usage = TokenUsage(input_tokens=3, output_tokens=5, model_calls=1)
    ended = await store.complete(execution.id, "the answer", usage=usage, before=before)
    assert ended is not None
    read = await store.for_delivery(execution.id)
    assert (
        (ended.token, ended.token_hash)
        == (read.token, read.token_hash)
        == (b"t-1", ended.token_hash)
    )
    assert ended.execution == dataclasses.replace(read.execution, messages=[], steps=[])
    stored = await store.get_execution(execution.id)
    assert stored.usage == usage
    assert [(m.role, m.content) for m in stored.messages][-1] == (
        states.ROLE_ASSISTANT,
        "the answer",
    )


async def test_an_end_after_another_end_writes_nothing(store: Store) -> None:
    execution = (await store.create_execution(new(await agent_id(store)))).execution
    before, _ = await store.start_run(execution.id)
    assert await store.finish(execution.id, phase=states.PHASE_CANCELLED)
    assert await store.complete(execution.id, "late", before=before) is None
    stored = await store.get_execution(execution.id)
    assert stored.phase == states.PHASE_CANCELLED
    # Atomic: the refused end appended no message either.
    assert [m.content for m in stored.messages] == ["hi"]
