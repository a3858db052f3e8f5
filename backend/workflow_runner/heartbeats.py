"""Heartbeating while an activity waits on something else (a request, a process)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity


@contextlib.asynccontextmanager
async def heartbeating(interval: float) -> AsyncIterator[None]:
    """Heartbeats every `interval` seconds until the block ends: a heartbeat timeout the
    workflow sets sees the activity alive, and a cancellation reaches it."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
