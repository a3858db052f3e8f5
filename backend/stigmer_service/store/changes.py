"""The store's change feed: which executions changed, told to this process's subscribers at once
and, on PostgreSQL, heard from every other replica through LISTEN/NOTIFY.

Every store write that changes what a reader of an execution sees (its phase, messages, callback,
steps, approvals) bumps `executions.version` and, once its transaction has committed, publishes
the execution's id here. On PostgreSQL a trigger (migration 0006) also notifies `CHANNEL` with the
id of every inserted, updated or deleted execution row, in the writing transaction, so the
notification goes out exactly when the write becomes visible, from whichever replica wrote it.

A notification can still be lost (the listener's connection dropped, a replica on SQLite shared by
another process): subscribers are told `EVERYTHING` when the listener (re)connects, and the watch
hub keeps a slow safety poll, so a lost notification delays an update, never loses it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.stigmer_service import logs

log = logs.get(__name__)

# The NOTIFY channel of migration 0006's trigger; its payload is the execution's id.
CHANNEL = "stigmer_execution_changed"
# Told to subscribers instead of an id when any execution may have changed unseen.
EVERYTHING: None = None
# How the listener's connection shows in pg_stat_activity.
APPLICATION_NAME = "stigmer-change-listener"
# Connection arguments SQLAlchemy's asyncpg dialect takes for itself, which asyncpg refuses.
_DIALECT_ONLY = (
    "prepared_statement_cache_size",
    "prepared_statement_name_func",
    "async_creator_fn",
)

Subscriber = Callable[[str | None], None]


class ChangeFeed:
    """This process's subscribers to the store's changes; `publish` calls each one at once.

    Subscribers must be quick and must not raise (the watch hub marks the id and returns)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self.published = 0
        self.heard = 0

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Adds `subscriber`; returns the function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, execution_id: str) -> None:
        """The execution changed in a transaction that has committed (a write of this process)."""
        self.published += 1
        self._tell(execution_id)

    def heard_from_database(self, execution_id: str | None) -> None:
        """A notification from the database (any replica's write), or EVERYTHING."""
        self.heard += 1
        self._tell(execution_id)

    def _tell(self, execution_id: str | None) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(execution_id)
            except Exception:  # One broken subscriber must not keep the change from the rest.
                log.exception("change subscriber failed", execution_id=execution_id or "*")


def _connect_args(engine: AsyncEngine) -> dict[str, Any]:
    """asyncpg's arguments for the engine's database, as SQLAlchemy's dialect reads its URL."""
    _args, params = engine.dialect.create_connect_args(engine.url)
    for name in _DIALECT_ONLY:
        params.pop(name, None)
    return dict(params)


async def _listen_once(params: dict[str, Any], feed: ChangeFeed, ping_every: float) -> None:
    """Listens on one connection until it drops (or stops answering a ping)."""
    server_settings = {"application_name": APPLICATION_NAME}
    conn = await asyncpg.connect(**params, server_settings=server_settings, timeout=10)
    lost = asyncio.Event()
    conn.add_termination_listener(lambda _conn: lost.set())
    try:
        await conn.add_listener(
            CHANNEL, lambda _conn, _pid, _channel, payload: feed.heard_from_database(payload)
        )
        # Whatever was written while no connection listened went unheard: look at everything.
        feed.heard_from_database(EVERYTHING)
        log.info("listening for execution changes", channel=CHANNEL)
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), ping_every)
            if not lost.is_set():
                # A connection cut without a word (a network partition) is found by asking.
                await conn.fetchval("SELECT 1", timeout=ping_every)
    finally:
        with contextlib.suppress(Exception):
            await conn.close(timeout=2)


async def listen(
    engine: AsyncEngine, feed: ChangeFeed, *, retry: float = 1.0, ping_every: float = 15.0
) -> None:
    """Feeds `feed` with the database's notifications until cancelled, on a connection of its
    own (LISTEN holds it), reconnecting `retry` seconds after it drops."""
    params = _connect_args(engine)
    while True:
        try:
            await _listen_once(params, feed, ping_every)
            log.warning("change listener lost its connection; reconnecting")
        except asyncio.CancelledError:
            raise
        except Exception as error:  # The database is away: try again shortly.
            log.warning("change listener failed; reconnecting", error=type(error).__name__)
        await asyncio.sleep(retry)


def start_listening(engine: AsyncEngine, feed: ChangeFeed) -> asyncio.Task[None] | None:
    """The task that feeds `feed` with the database's notifications (cancel it to stop); None
    on SQLite, which is one process whose writes the store publishes itself."""
    if engine.dialect.name != "postgresql":
        return None
    return asyncio.ensure_future(listen(engine, feed))
