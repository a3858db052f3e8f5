"""Awaiting a long call inside an activity while heartbeating, so that a dead worker is noticed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

T = TypeVar("T")

# The failure an activity reports when Temporal has already closed it (its workflow ended, or
# this attempt timed out): nobody reads it, so it must not cost a traceback in the log.
ABANDONED_ERROR_TYPE = "ActivityAbandoned"


async def heartbeating(call: Awaitable[T], interval: float) -> T:
    """Awaits `call`, heartbeating every `interval` seconds meanwhile."""
    task: asyncio.Future[T] = asyncio.ensure_future(call)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                return task.result()
            activity.heartbeat()
    except asyncio.CancelledError:
        details = activity.cancellation_details()
        if details is not None and (details.not_found or details.timed_out):
            # Temporal closed this attempt already (a retry, if any, is its own): the SDK
            # would log a cancellation it did not request as a failure with a traceback.
            raise ApplicationError(
                "the activity was closed by Temporal while it ran "
                f"({'its workflow ended' if details.not_found else 'timed out'})",
                type=ABANDONED_ERROR_TYPE,
                category=ApplicationErrorCategory.BENIGN,
            ) from None
        raise  # Requested (the execution was cancelled) or the worker stops: the SDK reports it.
    finally:
        # Cancelled (the execution timed out or was cancelled): stop the call too.
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
