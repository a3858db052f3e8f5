"""Fault injection for the system tests: the one seam where a test may slow the callback path.

The delivery module calls `before_first_attempt()` before each delivery made by an activity's
first attempt. In production it does nothing. STIGMER_TEST_CALLBACK_DELAY (never set in
production) makes it hold that delivery back, heartbeating, so that a test
(tests/observability/test_callback_recovery.py) can kill the service after the execution's end
is written and before its callback is sent.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from backend.stigmer_service import logs
from backend.stigmer_service.config import Settings
from backend.stigmer_service.execution.heartbeating import heartbeating

log = logs.get(__name__)


class FaultInjection(Protocol):
    async def before_first_attempt(self, fields: dict[str, str]) -> None:
        """Runs before a delivery made by an activity's first attempt."""


class NoFaults:
    """Production: nothing is injected."""

    async def before_first_attempt(self, fields: dict[str, str]) -> None:
        return None


class CallbackDelay:
    """Holds the delivery back for `seconds`, heartbeating every `heartbeat_interval`."""

    def __init__(self, seconds: float, heartbeat_interval: float) -> None:
        self.seconds = seconds
        self.heartbeat_interval = heartbeat_interval

    async def before_first_attempt(self, fields: dict[str, str]) -> None:
        log.warning("callback held back by the test hook", seconds=self.seconds, **fields)
        await heartbeating(asyncio.sleep(self.seconds), self.heartbeat_interval)


def from_settings(settings: Settings) -> FaultInjection:
    """The faults the settings ask for (none, unless a system test set the delay)."""
    if settings.test_callback_delay > 0:
        return CallbackDelay(settings.test_callback_delay, settings.activity_heartbeat_interval)
    return NoFaults()
