"""Who is waiting for which events: listener and start registrations in the KV bucket.

A registration is one key (listeners: `listen.<workflow>.<listener>`, starts: `start.<schedule>`,
each part base64url so any id fits a key) whose value is the contract's dataclass as JSON. The
router keeps a copy of the bucket (`RegistrationView`, fed by a KV watcher) and, before routing
an event, waits until the copy is as new as the bucket: a registration written before an event
was published is always seen when that event is routed.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from typing import Any

import structlog
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from backend.workflow_runner import metrics
from backend.workflow_runner.events.contract import ListenerRegistration, StartRegistration

LISTENER_PREFIX = "listen."
START_PREFIX = "start."

log = structlog.get_logger(__name__)


class RegistrationViewError(Exception):
    """The router's copy of the registrations did not catch up with the bucket in time."""


def _token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def listener_key(workflow_id: str, listener_id: str) -> str:
    return f"{LISTENER_PREFIX}{_token(workflow_id)}.{_token(listener_id)}"


def start_key(schedule_id: str) -> str:
    return f"{START_PREFIX}{_token(schedule_id)}"


def _encode(registration: ListenerRegistration | StartRegistration) -> bytes:
    return json.dumps(dataclasses.asdict(registration), separators=(",", ":")).encode("utf-8")


async def put_listener(kv: KeyValue, registration: ListenerRegistration) -> int:
    """Stores (or replaces) a listener; returns the bucket revision it got."""
    key = listener_key(registration.workflow_id, registration.listener_id)
    return int(await kv.put(key, _encode(registration)))


async def delete_listener(kv: KeyValue, workflow_id: str, listener_id: str) -> None:
    await kv.delete(listener_key(workflow_id, listener_id))


async def put_start(kv: KeyValue, registration: StartRegistration) -> int:
    """Stores (or replaces) an event-driven start (`schedule.on`)."""
    return int(await kv.put(start_key(registration.schedule_id), _encode(registration)))


async def delete_start(kv: KeyValue, schedule_id: str) -> None:
    await kv.delete(start_key(schedule_id))


async def list_starts(kv: KeyValue) -> list[StartRegistration]:
    """Every event-driven start registered now (`schedule list`)."""
    watcher = await kv.watch(START_PREFIX + ">", ignore_deletes=True)
    found: list[StartRegistration] = []
    try:
        async for entry in watcher:
            if entry is None:  # The end of the current values.
                break
            if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
                continue
            registration = decode(entry.key, entry.value)
            if isinstance(registration, StartRegistration):
                found.append(registration)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return found


async def delete_start_if_present(kv: KeyValue, schedule_id: str) -> bool:
    """Deletes an event-driven start; False when there was none."""
    try:
        await kv.get(start_key(schedule_id))
    except KeyNotFoundError:  # KeyDeletedError is one.
        return False
    await delete_start(kv, schedule_id)
    return True


def decode(key: str, value: bytes) -> ListenerRegistration | StartRegistration | None:
    """The registration a key holds; None (logged) for a value this version cannot read."""
    try:
        raw: dict[str, Any] = json.loads(value)
        if key.startswith(LISTENER_PREFIX):
            return ListenerRegistration(**raw)
        if key.startswith(START_PREFIX):
            return StartRegistration(**raw)
    except (ValueError, TypeError) as error:
        log.warning("unreadable registration", key=key, error=type(error).__name__)
    return None


def routes(types: list[str], event_type: str) -> bool:
    """Whether a registration of `types` routes events of `event_type` (empty: every type)."""
    return not types or event_type in types


class RegistrationView:
    """The router's copy of the bucket, kept current by a watcher."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv
        self.listeners: dict[str, ListenerRegistration] = {}
        self.starts: dict[str, StartRegistration] = {}
        self.revision = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    async def start(self) -> None:
        self._watcher = await self._kv.watchall()
        self._task = asyncio.create_task(self._follow(self._watcher))

    async def stop(self) -> None:
        if self._watcher is not None:
            await self._watcher.stop()  # type: ignore[no-untyped-call]
        if self._task is not None:
            self._task.cancel()

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:  # The end of the initial values.
                continue
            key = entry.key
            if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
                self.listeners.pop(key, None)
                self.starts.pop(key, None)
            else:
                registration = decode(key, entry.value)
                if isinstance(registration, ListenerRegistration):
                    self.listeners[key] = registration
                elif isinstance(registration, StartRegistration):
                    self.starts[key] = registration
            # Set on every change, not only when an event is routed: the gauge shows who
            # waits even while no event comes.
            metrics.event_listeners_waiting.set(len(self.listeners))
            async with self._changed:
                self.revision = max(self.revision, int(entry.revision or 0))
                self._changed.notify_all()

    async def caught_up(self, timeout: float = 10.0) -> None:
        """Returns once every registration written so far is in the copy."""
        status = await self._kv.status()
        target = int(status.stream_info.state.last_seq)
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: self.revision >= target)
        except TimeoutError:
            raise RegistrationViewError(
                f"the registrations copy is at revision {self.revision}, the bucket at {target}"
            ) from None

    def routing(
        self, event_type: str
    ) -> tuple[list[ListenerRegistration], list[StartRegistration]]:
        return (
            [r for r in self.listeners.values() if routes(r.types, event_type)],
            [r for r in self.starts.values() if routes(r.types, event_type)],
        )
