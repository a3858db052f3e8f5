"""The one bounded wait of the tests: retry a check until it passes (sdk-python's assert_eventually)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 30.0, every: float = 0.1
) -> T:
    """Runs `check` until it returns without an AssertionError and returns what it returned.

    After `timeout` seconds the last AssertionError propagates; any other exception propagates at
    once. A check that hangs is cut off at the deadline too, so every wait is bounded.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                return await check()
        except AssertionError:
            if loop.time() >= deadline:
                raise
        except TimeoutError as hung:
            if loop.time() < deadline:
                raise  # the check's own timeout, not ours
            raise AssertionError(f"the check did not return within {timeout}s") from hung
        await asyncio.sleep(every)
