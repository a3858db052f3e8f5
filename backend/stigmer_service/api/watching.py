"""Bounded, pushed watches: at most `max_watches` streams per process, each for at most
`max_watch_seconds`, woken when the store's change feed names their execution.

The feed (store/changes.py) names each execution a committed write changed: this process's
writes at once, other replicas' through PostgreSQL's NOTIFY. One task per process then reads the
versions of the named, watched executions in one query and wakes the watchers whose version
moved; a burst of changes costs one query. Every `poll_interval` the same task reads the versions
of all watched executions: the safety poll, so that a lost notification delays an update by at
most that long, never loses it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator

from backend.stigmer_service import logs
from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)
# Ids per version query, well under every database's bound-parameter limit.
_CHUNK = 500


class WatchLimitReached(Exception):
    """The process already serves its maximum of concurrent watches."""


@dataclasses.dataclass(eq=False)
class Watcher:
    """One stream's view: the version it last sent; `changed` is set when the row differs."""

    execution_id: str
    version: int
    changed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    deleted: bool = False

    def sent(self, version: int) -> None:
        self.version = version

    async def wait(self, timeout: float) -> bool:
        """True when the execution changed (or went away) within `timeout` seconds.

        The change is taken before the stream reads the execution: one heard during that read
        wakes the stream again (and a read that found nothing new sends nothing), where clearing
        after the read would drop it until the safety poll."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout)
        changed = self.changed.is_set()
        if not self.deleted:
            self.changed.clear()
        return changed


class WatchHub:
    """The process's watches and their one checker task (started with the first watch, ended
    with the last), fed by the store's change feed and a slow safety poll."""

    def __init__(self, store: Store, *, poll_interval: float, max_watches: int) -> None:
        self._store = store
        self._poll_interval = poll_interval
        self.max_watches = max_watches
        self._watchers: dict[str, set[Watcher]] = {}
        self._count = 0
        self._checker: asyncio.Task[None] | None = None
        # Watched executions named by the feed since the last check; `_everything`: any may have
        # changed unseen (the database listener reconnected).
        self._dirty: set[str] = set()
        self._everything = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        store.changes.subscribe(self._heard)

    @property
    def active(self) -> int:
        return self._count

    @contextlib.contextmanager
    def watching(self, execution_id: str, version: int) -> Iterator[Watcher]:
        if self._count >= self.max_watches:
            raise WatchLimitReached
        watcher = Watcher(execution_id, version)
        self._count += 1
        self._watchers.setdefault(execution_id, set()).add(watcher)
        if self._checker is None or self._checker.done():
            self._loop = asyncio.get_running_loop()
            self._checker = asyncio.ensure_future(self._check())
        # A write between the caller's read of `version` and now went unheard: check once.
        self._mark(execution_id)
        try:
            yield watcher
        finally:
            self._count -= 1
            same = self._watchers.get(execution_id, set())
            same.discard(watcher)
            if not same:
                self._watchers.pop(execution_id, None)
            if not self._watchers:
                self._wake.set()  # The checker ends now, not at its next poll.

    def _heard(self, execution_id: str | None) -> None:
        """The feed's subscriber: it may call from another thread (a worker's activity)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # No watch was ever served: nothing to wake.
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._mark(execution_id)
        else:
            loop.call_soon_threadsafe(self._mark, execution_id)

    def _mark(self, execution_id: str | None) -> None:
        if execution_id is None:
            self._everything = True
        elif execution_id in self._watchers:
            self._dirty.add(execution_id)
        else:
            return  # Not watched here: no query.
        self._wake.set()

    async def _check(self) -> None:
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + self._poll_interval
        while self._watchers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_poll - loop.time()))
            self._wake.clear()
            if self._everything or loop.time() >= next_poll:
                ids, self._everything = list(self._watchers), False
                next_poll = loop.time() + self._poll_interval
            else:
                ids = [i for i in self._dirty if i in self._watchers]
            self._dirty.clear()
            if ids:
                await self._compare(ids)

    async def _compare(self, ids: list[str]) -> None:
        """Reads the versions of `ids` and wakes each watcher whose execution moved on."""
        try:
            versions: dict[str, int] = {}
            for start in range(0, len(ids), _CHUNK):
                versions.update(await self._store.execution_versions(ids[start : start + _CHUNK]))
        except Exception as error:  # The database is away: the next round tries again.
            log.warning("watch check failed", error=type(error).__name__)
            self._dirty.update(ids)
            await asyncio.sleep(min(1.0, self._poll_interval))
            self._wake.set()
            return
        for execution_id in ids:
            current = versions.get(execution_id)
            for watcher in self._watchers.get(execution_id, ()):
                if current is None:
                    watcher.deleted = True
                    watcher.changed.set()
                elif current != watcher.version:
                    watcher.changed.set()
