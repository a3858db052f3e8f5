"""The store on SQLite and on a real PostgreSQL: guarded terminal phase, concurrency, idempotency."""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet
from sqlalchemy import text

from backend.stigmer_service import states
from backend.stigmer_service.crypto import Cipher
from backend.stigmer_service.store import db
from backend.stigmer_service.store.records import ExecutionFilter, NewExecution
from backend.stigmer_service.store.repository import Store

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[Store]:
    """A migrated store on a fresh database of either kind (PostgreSQL: its own database)."""
    name = f"stigmer_test_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    else:
        admin = await asyncpg.connect(POSTGRES)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    engine = db.create_engine(url)
    try:
        await db.migrate(engine)
        await db.migrate(engine)  # Idempotent: a restart migrates nothing.
        yield Store(engine, Cipher(Fernet.generate_key()))
    finally:
        await engine.dispose()
        if request.param == "postgresql":
            admin = await asyncpg.connect(POSTGRES)
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()


async def agent_id(store: Store) -> str:
    agent = await store.create_agent(
        org="acme", slug=f"a-{uuid.uuid4().hex[:6]}", name="a", labels={}, annotations={}, spec={}
    )
    return agent.id


def new(agent: str, key: str = "", token: bytes = b"", **env: tuple[str, bool]) -> NewExecution:
    return NewExecution(
        org="acme",
        name="",
        labels={},
        agent_id=agent,
        session_id="ses-1",
        message="hi",
        config={},
        caller={},
        runtime_env=dict(env),
        token=token,
        idempotency_key=key,
    )


async def test_terminal_phase_is_never_overwritten(store: Store) -> None:
    execution = (await store.create_execution(new(await agent_id(store)))).execution
    assert await store.mark_running(execution.id)
    assert await store.finish(execution.id, phase=states.PHASE_COMPLETED, output="done")
    assert not await store.finish(execution.id, phase=states.PHASE_FAILED, error_type="Late")
    assert not await store.finish(execution.id, phase=states.PHASE_CANCELLED)
    assert not await store.mark_running(execution.id)
    assert not await store.append_message(execution.id, states.ROLE_ASSISTANT, "late")
    stored = await store.get_execution(execution.id)
    assert (stored.phase, stored.output, stored.error_type) == (states.PHASE_COMPLETED, "done", "")
    assert stored.callback_outcome == states.OUTCOME_COMPLETED
    assert [m.content for m in stored.messages] == ["hi"]


async def test_concurrent_finishes_have_one_winner(store: Store) -> None:
    execution = (await store.create_execution(new(await agent_id(store)))).execution
    phases = [states.PHASE_COMPLETED, states.PHASE_FAILED, states.PHASE_CANCELLED] * 3
    wins = await asyncio.gather(*(store.finish(execution.id, phase=p) for p in phases))
    assert sum(wins) == 1
    stored = await store.get_execution(execution.id)
    assert stored.phase == phases[wins.index(True)]


async def test_concurrent_appends_lose_no_message(store: Store) -> None:
    execution = (await store.create_execution(new(await agent_id(store)))).execution
    before = execution.version
    contents = [f"m{i}" for i in range(30)]
    results = await asyncio.gather(
        *(store.append_message(execution.id, states.ROLE_ASSISTANT, c) for c in contents)
    )
    assert all(results)
    stored = await store.get_execution(execution.id)
    assert sorted(m.content for m in stored.messages[1:]) == sorted(contents)
    assert stored.version == before + len(contents)


async def test_concurrent_creates_with_one_key_insert_once(store: Store) -> None:
    agent = await agent_id(store)
    results = await asyncio.gather(
        *(store.create_execution(new(agent, key="wf/run/1")) for _ in range(8))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.execution.id for r in results}) == 1
    page, _ = await store.list_executions(ExecutionFilter(agent_id=agent), after=None, limit=50)
    assert len(page) == 1
    # Without a key every create is new.
    free = await asyncio.gather(*(store.create_execution(new(agent)) for _ in range(3)))
    assert all(r.created for r in free)


async def test_a_new_token_replaces_the_stored_one(store: Store) -> None:
    agent = await agent_id(store)
    first = await store.create_execution(new(agent, key="k", token=b"token-1"))
    same = await store.create_execution(new(agent, key="k", token=b"token-1"))
    assert not same.created and not same.token_replaced
    replaced = await store.create_execution(new(agent, key="k", token=b"token-2"))
    assert replaced.token_replaced and replaced.execution.id == first.execution.id
    delivery = await store.for_delivery(first.execution.id)
    token, hashed = delivery.token, delivery.token_hash
    assert token == b"token-2"
    assert hashed == replaced.execution.token_hash != first.execution.token_hash
    # A delivery recorded against the dead token's hash changes nothing.
    assert not await store.record_callback(
        first.execution.id,
        for_token_hash=first.execution.token_hash,
        state=states.CALLBACK_DELIVERED,
    )


async def test_complete_writes_answer_and_end_at_once_and_returns_the_current_token(
    store: Store,
) -> None:
    agent = await agent_id(store)
    execution = (await store.create_execution(new(agent, key="k", token=b"token-1"))).execution
    assert await store.mark_running(execution.id)
    # A retried caller replaced the token while the agent ran: the end goes to the new one.
    await store.create_execution(new(agent, key="k", token=b"token-2"))
    ended = await store.complete(execution.id, "the answer")
    assert ended is not None
    record, token, hashed = ended.execution, ended.token, ended.token_hash
    assert (record.phase, record.output) == (states.PHASE_COMPLETED, "the answer")
    assert record.callback_outcome == states.OUTCOME_COMPLETED
    assert record.callback_state == states.CALLBACK_WAITING
    assert token == b"token-2" and hashed == record.token_hash
    stored = await store.get_execution(execution.id)
    assert [(m.role, m.content) for m in stored.messages] == [
        (states.ROLE_USER, "hi"),
        (states.ROLE_ASSISTANT, "the answer"),
    ]
    assert stored.completed_at == record.completed_at is not None
    # Ended: a late answer changes nothing and adds no message.
    assert await store.complete(execution.id, "late") is None
    assert len((await store.get_execution(execution.id)).messages) == 2


async def test_complete_racing_a_cancel_has_one_winner(store: Store) -> None:
    agent = await agent_id(store)
    for _ in range(5):
        execution = (await store.create_execution(new(agent))).execution
        completed, cancelled = await asyncio.gather(
            store.complete(execution.id, "answer"),
            store.finish(execution.id, phase=states.PHASE_CANCELLED),
        )
        assert (completed is not None) != cancelled
        stored = await store.get_execution(execution.id)
        answers = [m for m in stored.messages if m.role == states.ROLE_ASSISTANT]
        if cancelled:
            assert stored.phase == states.PHASE_CANCELLED and not answers
        else:
            assert stored.phase == states.PHASE_COMPLETED and len(answers) == 1


async def test_waiting_callers_are_the_unended_executions_with_a_token(store: Store) -> None:
    agent = await agent_id(store)
    pending = (await store.create_execution(new(agent, token=b"t-pending"))).execution
    running = (await store.create_execution(new(agent, token=b"t-running"))).execution
    await store.mark_running(running.id)
    ended = (await store.create_execution(new(agent, token=b"t-ended"))).execution
    await store.finish(ended.id, phase=states.PHASE_FAILED, error_type="X")
    await store.create_execution(new(agent))  # No caller waits.
    waiting = {c.execution_id: c for c in (await store.waiting_callers()).callers}
    assert set(waiting) == {pending.id, running.id}
    assert waiting[running.id].token == b"t-running"
    assert waiting[running.id].token_hash == running.token_hash
    assert b"t-running" not in repr(waiting[running.id]).encode()


async def test_a_token_another_key_wrote_skips_only_its_own_caller(store: Store) -> None:
    """Issue 14, finding 6: one undecryptable token used to fail the whole read (InvalidToken),
    and with it every sweep, so that no caller was heartbeated."""
    agent = await agent_id(store)
    before = (await store.create_execution(new(agent, token=b"t-before"))).execution
    other_key = Store(store.engine, Cipher(Fernet.generate_key()))
    foreign = (await other_key.create_execution(new(agent, token=b"t-foreign"))).execution
    after = (await store.create_execution(new(agent, token=b"t-after"))).execution
    waiting = await store.waiting_callers()
    assert {c.execution_id: c.token for c in waiting.callers} == {
        before.id: b"t-before",
        after.id: b"t-after",
    }
    assert [(u.execution_id, u.token_hash) for u in waiting.unreadable] == [
        (foreign.id, foreign.token_hash)
    ]


async def test_a_delivered_callback_is_never_downgraded(store: Store) -> None:
    execution = (await store.create_execution(new(await agent_id(store), token=b"t"))).execution
    await store.finish(execution.id, phase=states.PHASE_COMPLETED)
    hashed = execution.token_hash
    assert await store.record_callback(
        execution.id, for_token_hash=hashed, state=states.CALLBACK_DELIVERED
    )
    # The loser of two racing deliveries sees NOT_FOUND: it must not overwrite the winner.
    assert not await store.record_callback(
        execution.id, for_token_hash=hashed, state=states.CALLBACK_ALREADY_CLOSED
    )
    stored = await store.get_execution(execution.id)
    assert (stored.callback_state, stored.callback_attempts) == (states.CALLBACK_DELIVERED, 1)


async def test_secrets_and_tokens_are_encrypted_at_rest(store: Store) -> None:
    agent = await agent_id(store)
    created = await store.create_execution(
        new(agent, token=b"the-token", KEY=("secret-value", True), PLAIN=("visible", False))
    )
    execution = created.execution
    assert execution.runtime_env["KEY"].value != "secret-value"
    assert execution.runtime_env["PLAIN"].value == "visible"
    clear, secrets = store.decrypt_env(execution)
    assert clear == {"KEY": "secret-value", "PLAIN": "visible"}
    assert secrets == {"KEY": "secret-value"}
    async with store.engine.connect() as conn:
        dump = repr((await conn.execute(text("SELECT * FROM executions"))).all())
    assert "secret-value" not in dump and "the-token" not in dump
