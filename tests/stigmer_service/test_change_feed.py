"""The store's change feed on SQLite and PostgreSQL: every write a reader of an execution sees is
published once it has committed (and notified by the database on PostgreSQL); a write that
writes nothing publishes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg  # type: ignore[import-untyped]
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet

from backend.common.contract import token_hash
from backend.stigmer_service import states
from backend.stigmer_service.crypto import Cipher
from backend.stigmer_service.store import changes, db
from backend.stigmer_service.store.base import now
from backend.stigmer_service.store.records import (
    APPROVAL_AWAITING,
    APPROVAL_REJECTED,
    STEP_TOOL_CALL,
    NewExecution,
    StepDecision,
    StepRecord,
)
from backend.stigmer_service.store.repository import Store
from tests.support import postgres
from tests.support.eventually import eventually


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[Store]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        else:
            url = await stack.enter_async_context(postgres.fresh_database("stigmer_feed"))
        engine = db.create_engine(url)
        stack.push_async_callback(engine.dispose)
        await db.migrate(engine)
        yield Store(engine, Cipher(Fernet.generate_key()))


class Heard:
    """What the feed published, and (PostgreSQL) what the database notified, in order."""

    def __init__(self) -> None:
        self.published: list[str | None] = []
        self.notified: list[str] = []

    def clear(self) -> None:
        self.published.clear()
        self.notified.clear()


@contextlib.asynccontextmanager
async def hearing(store: Store) -> AsyncIterator[Heard]:
    heard = Heard()
    unsubscribe = store.changes.subscribe(heard.published.append)
    listener = None
    if store.engine.dialect.name == "postgresql":
        url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        listener = await asyncpg.connect(url)
        await listener.add_listener(
            changes.CHANNEL, lambda _c, _p, _ch, payload: heard.notified.append(payload)
        )
    try:
        yield heard
    finally:
        unsubscribe()
        if listener is not None:
            await listener.close()


def reject(by: str) -> StepDecision:
    return StepDecision(1, APPROVAL_REJECTED, by, "no")


async def old_attempt(store: Store, execution_id: str, hash_: str) -> bool:
    return await store.record_callback(
        execution_id, for_token_hash=hash_, state=states.CALLBACK_FAILED
    )


def new(agent_id: str, key: str = "", token: bytes = b"") -> NewExecution:
    return NewExecution(
        org="acme",
        name="",
        labels={},
        agent_id=agent_id,
        session_id="ses-1",
        message="hi",
        config={},
        caller={},
        runtime_env={},
        token=token,
        idempotency_key=key,
    )


async def test_every_write_of_an_execution_is_published(store: Store) -> None:
    agent = await store.create_agent(
        org="acme", slug="a", name="a", labels={}, annotations={}, spec={}
    )
    first = (await store.create_execution(new(agent.id, "k", b"t1"))).execution
    second = (await store.create_execution(new(agent.id))).execution
    call = StepRecord(0, STEP_TOOL_CALL, now(), tool_server="s", tool_name="t", arguments="{}")
    awaiting = StepRecord(
        1, STEP_TOOL_CALL, now(), tool_server="s", tool_name="t", approval=APPROVAL_AWAITING
    )
    e, f = first.id, second.id
    # (what, the execution it writes, the write, whether it writes anything)
    writes: list[tuple[str, str, Callable[[], Awaitable[object]], bool]] = [
        ("mark_running", e, lambda: store.mark_running(e), True),
        ("append_message", e, lambda: store.append_message(e, states.ROLE_ASSISTANT, "m"), True),
        ("record_step", e, lambda: store.record_step(e, call), True),
        ("record_step again", e, lambda: store.record_step(e, call), True),
        ("record_step awaiting", e, lambda: store.record_step(e, awaiting), True),
        ("decide_step", e, lambda: store.decide_step(e, reject("ann")), True),
        ("decide_step decided", e, lambda: store.decide_step(e, reject("bo")), False),
        ("token replaced", e, lambda: store.create_execution(new(agent.id, "k", b"t2")), True),
        ("token kept", e, lambda: store.create_execution(new(agent.id, "k", b"t2")), False),
        ("complete", e, lambda: store.complete(e, "done"), True),
        ("complete again", e, lambda: store.complete(e, "late"), False),
        ("finish ended", e, lambda: store.finish(e, phase=states.PHASE_FAILED), False),
        # The token was replaced: an attempt recorded for the old one is ignored.
        ("record_callback old token", e, lambda: old_attempt(store, e, first.token_hash), False),
        ("record_callback", e, lambda: old_attempt(store, e, token_hash(b"t2")), True),
        ("finish", f, lambda: store.finish(f, phase=states.PHASE_CANCELLED), True),
        ("reopen_callback without a token", f, lambda: store.reopen_callback(f), False),
        ("delete_execution", f, lambda: store.delete_execution(f), True),
    ]
    async with hearing(store) as heard:
        for name, target, write, publishes in writes:
            heard.clear()
            version = await store.execution_version(target)
            await write()
            after = await store.execution_version(target)
            if not publishes:
                assert heard.published == [], name
                assert after == version, name
                continue
            assert heard.published == [target], name
            # The version moved in the same transaction (or the row went): a watch sees it.
            assert after != version, name
            if store.engine.dialect.name == "postgresql":

                async def notified(target: str = target, name: str = name) -> None:
                    assert target in heard.notified, name

                await eventually(notified, timeout=5, every=0.02)
        assert store.changes.published > 0


async def test_a_failing_subscriber_does_not_keep_the_change_from_others() -> None:
    feed = changes.ChangeFeed()
    heard: list[str | None] = []

    def broken(_execution_id: str | None) -> None:
        raise RuntimeError("broken")

    feed.subscribe(broken)
    feed.subscribe(heard.append)
    feed.publish("aex-1")
    feed.heard_from_database(changes.EVERYTHING)
    await asyncio.sleep(0)
    assert heard == ["aex-1", None]
