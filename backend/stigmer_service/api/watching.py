"""Bounded watches: at most `max_watches` streams per process, each for at most
`max_watch_seconds`, all fed by one shared poller that reads every watched version in one query."""

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
        self.changed.clear()

    async def wait(self, timeout: float) -> bool:
        """True when the execution changed (or went away) within `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout)
        return self.changed.is_set()


class WatchHub:
    """The process's watches and their one poller (started with the first, ended with the last).

    Polling the database works the same with one replica or several behind a balancer."""

    def __init__(self, store: Store, *, poll_interval: float, max_watches: int) -> None:
        self._store = store
        self._poll_interval = poll_interval
        self.max_watches = max_watches
        self._watchers: dict[str, set[Watcher]] = {}
        self._count = 0
        self._poller: asyncio.Task[None] | None = None

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
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll())
        try:
            yield watcher
        finally:
            self._count -= 1
            same = self._watchers.get(execution_id, set())
            same.discard(watcher)
            if not same:
                self._watchers.pop(execution_id, None)

    async def _poll(self) -> None:
        while self._watchers:
            await asyncio.sleep(self._poll_interval)
            ids = list(self._watchers)
            try:
                versions: dict[str, int] = {}
                for start in range(0, len(ids), _CHUNK):
                    versions.update(
                        await self._store.execution_versions(ids[start : start + _CHUNK])
                    )
            except Exception as error:  # The database is away: the next round tries again.
                log.warning("watch poll failed", error=type(error).__name__)
                continue
            for execution_id in ids:
                current = versions.get(execution_id)
                for watcher in self._watchers.get(execution_id, ()):
                    if current is None:
                        watcher.deleted = True
                        watcher.changed.set()
                    elif current != watcher.version:
                        watcher.changed.set()
