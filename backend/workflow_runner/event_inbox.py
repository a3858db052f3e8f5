"""The events delivered to a workflow's listeners, queued per listener until a listen task takes
them: first in, first out, each event id at most once per listener.

The `stigmer_event` signal handler puts events in, the listen task takes them out; waiting for
one is a condition on the queue (`workflow.wait_condition` in a workflow), so a waiting workflow
holds no activity and no timer. An event for a listener that is not open (closed, or of another
run) is dropped: the router delivers only to registered listeners, and registration follows the
opening of the queue, so nothing routed to an open listener is lost.
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
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    seen: set[str] = dataclasses.field(default_factory=set)


class EventInbox:
    def __init__(self, wait: Wait = _poll) -> None:
        self._wait = wait
        self._queues: dict[str, _Queue] = {}
        self.duplicates = 0  # Events dropped because their listener had seen their id.

    def open(self, listener_id: str) -> None:
        self._queues.setdefault(listener_id, _Queue())

    def close(self, listener_id: str) -> None:
        self._queues.pop(listener_id, None)

    def is_open(self, listener_id: str) -> bool:
        return listener_id in self._queues

    def deliver(self, delivered: DeliveredEvent) -> bool:
        """Queues the event for its listener; False when dropped (not open, or a duplicate)."""
        queue = self._queues.get(delivered.listener_id)
        if queue is None:
            return False
        event_id = str(delivered.event.get("id") or "")
        if event_id and event_id in queue.seen:
            self.duplicates += 1
            return False
        queue.seen.add(event_id)
        queue.events.append(delivered.event)
        return True

    async def next(self, listener_id: str) -> dict[str, Any]:
        queue = self._queues[listener_id]
        await self._wait(lambda: bool(queue.events))
        return queue.events.pop(0)
