"""Awaiting a long call inside an activity while heartbeating, so that a dead worker is noticed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")


async def heartbeating(call: Awaitable[T], interval: float) -> T:
    """Awaits `call`, heartbeating every `interval` seconds meanwhile."""
    task: asyncio.Future[T] = asyncio.ensure_future(call)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        # Cancelled (the execution timed out or was cancelled): stop the call too.
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
