"""A token bucket: at most `rate` calls per second on average, `burst` at once, with pauses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    """Paces calls to a budget; `pause` stops every caller for a while (a server's back-off).

    Safe for many tasks of one event loop: nothing awaits between the check and the take."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate / 10)
        self._burst_given = burst is not None
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()
        self._paused_until = 0.0

    async def acquire(self) -> None:
        """Waits for one token (at once when `rate` is 0 or less: no limit)."""
        if self.rate <= 0:
            return
        while True:
            now = self._clock()
            if now < self._paused_until:
                await self._sleep(self._paused_until - now)
                continue
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await self._sleep((1 - self._tokens) / self.rate)

    def set_rate(self, rate: float) -> None:
        """A new rate from now on (and a tenth of it as the burst, unless one was given)."""
        self.rate = rate
        if not self._burst_given:
            self.burst = max(1.0, rate / 10)
            self._tokens = min(self._tokens, self.burst)

    def pause(self, seconds: float) -> None:
        """No token for `seconds` from now, for anyone (and none saved up meanwhile)."""
        until = self._clock() + seconds
        if until > self._paused_until:
            self._paused_until = until
            self._tokens = 0.0
            self._last = until
