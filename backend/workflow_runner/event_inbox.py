"""The events delivered to a workflow's listeners, queued per listener until a listen task takes
them: first in, first out, each event id at most once per listener.

The `stigmer_event` signal handler puts events in, the listen task takes them out; waiting for
one is a condition on the queue (`workflow.wait_condition` in a workflow), so a waiting workflow
holds no activity and no timer. An event for a listener that is not open (closed, or of another
run) is dropped: the router delivers only to registered listeners, and registration follows the
opening of the queue, so nothing routed to an open listener is lost.

The delivery window (docs/events.md): once the registration answered, an event at or before
the window's floor (the workflow's horizon, else the registration's `since_sequence`) is
dropped, whenever it arrives: a router that was behind (restarted, or a new consumer) may route
an older event to a listener registered since, and the line must not depend on that.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from backend.workflow_runner.events.contract import DeliveredEvent

Wait = Callable[[Callable[[], bool]], Awaitable[None]]


async def _poll(condition: Callable[[], bool]) -> None:
    """A wait for tests without Temporal (the workflow passes `workflow.wait_condition`)."""
    while not condition():
        await asyncio.sleep(0.001)


@dataclasses.dataclass
class _Queue:
    events: list[DeliveredEvent] = dataclasses.field(default_factory=list)
    seen: set[str] = dataclasses.field(default_factory=set)
    # The registration's since_sequence, once it answered: events at or before it are dropped.
    since: int | None = None


class EventInbox:
    def __init__(self, wait: Wait = _poll) -> None:
        self._wait = wait
        self._queues: dict[str, _Queue] = {}
        self.duplicates = 0  # Events dropped because their listener had seen their id.
        self.early = 0  # Events dropped because they were published before the registration.

    def open(self, listener_id: str) -> None:
        self._queues.setdefault(listener_id, _Queue())

    def start_after(self, listener_id: str, floor: int) -> None:
        """The window opens after sequence `floor`: drops what was queued at or before it, and
        anything at or before it that comes later; what stays is put in stream order (the
        registration's backlog may come after signals of newer events)."""
        queue = self._queues.get(listener_id)
        if queue is None:
            return
        queue.since = floor
        kept = sorted((d for d in queue.events if d.sequence > floor), key=lambda d: d.sequence)
        self.early += len(queue.events) - len(kept)
        for early in (d for d in queue.events if d.sequence <= floor):
            queue.seen.discard(str(early.event.get("id") or ""))
        queue.events = kept

    def close(self, listener_id: str) -> None:
        self._queues.pop(listener_id, None)

    def is_open(self, listener_id: str) -> bool:
        return listener_id in self._queues

    def deliver(self, delivered: DeliveredEvent) -> bool:
        """Queues the event for its listener; False when dropped (not open, or a duplicate)."""
        queue = self._queues.get(delivered.listener_id)
        if queue is None:
            return False
        if queue.since is not None and delivered.sequence <= queue.since:
            self.early += 1
            return False
        event_id = str(delivered.event.get("id") or "")
        if event_id and event_id in queue.seen:
            self.duplicates += 1
            return False
        queue.seen.add(event_id)
        queue.events.append(delivered)
        return True

    async def next(self, listener_id: str) -> dict[str, Any]:
        return (await self.next_delivered(listener_id)).event

    async def next_delivered(self, listener_id: str) -> DeliveredEvent:
        """The next event with its sequence."""
        queue = self._queues[listener_id]
        await self._wait(lambda: bool(queue.events))
        return queue.events.pop(0)
