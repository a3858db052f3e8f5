"""Time inside the interpreter: how a moment appears to expressions, and deadlines on work.

Neither reads a clock: moments come from the runners (`workflow.now()` in a workflow), and
`asyncio.wait` with a timeout is a durable timer under Temporal's workflow event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeVar

from backend.workflow_runner.dsl import errors
from backend.workflow_runner.dsl.errors import DslError, DslException

_T = TypeVar("_T")


def date_time(moment: datetime) -> dict[str, Any]:
    milliseconds = int(moment.timestamp() * 1000)
    return {
        "iso8601": moment.isoformat(),
        "epoch": {"seconds": milliseconds // 1000, "milliseconds": milliseconds},
    }


async def within(work: Awaitable[_T], seconds: float) -> _T:
    """Like `asyncio.wait_for`, but a timeout is always a TimeoutError: the cancelled work may end
    with another error (an agent call ends with the activity's cancellation error once the
    service has cancelled the agent), which `wait_for` would raise instead."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if done:
        return task.result()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # This workflow itself is being cancelled, not just the timed-out work.
    except Exception:  # Whatever the cancelled work ended with, it timed out.
        pass
    raise TimeoutError


async def deadline(work: Awaitable[_T], seconds: float, what: str, path: str) -> _T:
    """`within`, failing with the DSL's timeout error (`<what> timed out`, 408) at `path`."""
    try:
        return await within(work, seconds)
    except TimeoutError:
        detail = f"after {seconds:g}s"
        raise DslException(
            DslError(errors.TIMEOUT, 408, f"{what} timed out", detail, path)
        ) from None
