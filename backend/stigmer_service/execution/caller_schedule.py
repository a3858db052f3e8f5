"""When the caller sweeper heartbeats each waiting caller and checks its execution's workflow.

Heartbeating every waiting caller at a fixed cadence costs Temporal RPCs in proportion to their
number (10,000 callers every 10 s: 1,000 RPCs per second that do nothing). So each caller is due
on its own schedule, and all of them share one budget of RPCs per second (`caller_heartbeat_rps`):

    stretch   = max(1, waiting * (1 / caller_heartbeat_interval + 1 / execution_check_interval)
                       / caller_heartbeat_rps)
    heartbeat = min(heartbeat_timeout / 4, caller_heartbeat_interval * stretch)
    check     = execution_check_interval * stretch

A small deployment keeps the base cadence (stretch 1: a cancelled caller is noticed within 10 s);
a large one spreads the same budget over more callers, so the rate stays at the budget and a
caller's cost per hour falls as their number grows. A caller is never left longer than a quarter
of its own heartbeat timeout (the `heartbeat_timeout` its CallerInfo says; 60 s when it says
none, as runners did before): four chances before Temporal would time it out. When that bound
wins, the budget gives way: the sweep sends what the callers' timeouts need (10,000 callers
that say no timeout: 667 heartbeats per second), since a caller timed out costs more than its
heartbeats (its retry creates again); the most overdue go first.

A caller is first due one interval after its execution was created (its activity had just
started); one this sweeper has not seen before and that is older than that (a sweeper that
moved to another replica) is due at once, since nobody knows when it was last heartbeated.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import time
from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from backend.stigmer_service.config import Settings
    from backend.stigmer_service.store.records import WaitingCaller

# What a caller that does not say its heartbeat timeout has (the runner's before it said it).
DEFAULT_CALLER_HEARTBEAT_TIMEOUT = 60.0
# A caller is heartbeated at least this many times within its heartbeat timeout.
HEARTBEATS_PER_TIMEOUT = 4
# When the callers' timeouts need more than the budget, the rate is what they need and this
# much more, so that RPCs that fell due together catch up.
NEEDED_HEADROOM = 1.1
# The shortest round (one read of the waiting callers), whatever a caller's timeout asks.
SHORTEST_ROUND = 1.0


@dataclasses.dataclass(frozen=True)
class Due:
    """One caller's work in a round: `at` seconds after the round's start (0: at once), a
    check of its execution's workflow and then, unless that found it lost, a heartbeat."""

    at: float
    caller: WaitingCaller
    heartbeat: bool
    check: bool

    @property
    def rpcs(self) -> int:
        return int(self.heartbeat) + int(self.check)


@dataclasses.dataclass
class Round:
    """What one round of the sweep does, and when the next one starts."""

    due: list[Due]  # In the order of `at`; the most overdue first.
    seconds: float  # How long the round lasts: the next read of the waiting callers.
    heartbeat_interval: float  # The base cadence now (a caller's own timeout may shorten it).
    # The RPCs per second the round may send: the budget, or more when the callers' timeouts
    # need more (0: no limit).
    rps: float


class CallerSchedule:
    """Remembers when each waiting caller was last heartbeated and checked (by this sweeper,
    since its execution's creation) and plans the rounds."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._wall = wall
        # Execution id -> (token hash, when it was last heartbeated); a new token (a retried
        # caller) starts afresh.
        self._beaten: dict[str, tuple[str, float]] = {}
        self._checked: dict[str, float] = {}

    def stretch(self, waiting: int) -> float:
        """How many times longer than the base intervals every caller waits, so that
        `waiting` callers' heartbeats and checks stay within the budget (1: they fit)."""
        rps = self.settings.caller_heartbeat_rps
        if rps <= 0:
            return 1.0  # No budget: the base cadence, whatever it costs.
        per_caller = _rate(self.settings.caller_heartbeat_interval) + _rate(
            self.settings.execution_check_interval
        )
        return max(1.0, waiting * per_caller / rps)

    def heartbeat_interval(self, caller: WaitingCaller, stretch: float) -> float:
        """How long this caller may go between heartbeats."""
        timeout = caller.caller.heartbeat_timeout or DEFAULT_CALLER_HEARTBEAT_TIMEOUT
        return min(
            timeout / HEARTBEATS_PER_TIMEOUT, self.settings.caller_heartbeat_interval * stretch
        )

    def plan(self, waiting: list[WaitingCaller]) -> Round:
        """The heartbeats and checks due among `waiting` before the next round, each at its
        own time (forgets callers that no longer wait); at most a round's share of the budget,
        the most overdue first (the rest wait for the next round).

        Rounds are at most `caller_heartbeat_interval` long, so new callers and cancellations
        are seen within it, and shorter when a caller's interval is. Each caller is sent at
        its own time within the round, not all at the round's start: its cadence is its exact
        interval (not rounded to whole rounds), and the RPCs spread over the round."""
        now = self._clock()
        self._forget_all_but({caller.execution_id for caller in waiting})
        stretch = self.stretch(len(waiting))
        intervals = [self.heartbeat_interval(caller, stretch) for caller in waiting]
        base = self.settings.caller_heartbeat_interval
        seconds = max(min([base, *intervals]), min(base, SHORTEST_ROUND))
        check_every = self.settings.execution_check_interval * stretch
        due: list[Due] = []
        for caller, interval in zip(waiting, intervals, strict=True):
            beat_at = interval - self._since_beaten(caller, now, interval)
            check_at = math.inf
            if check_every > 0:
                check_at = check_every - self._since_checked(caller, now, check_every)
            beat, check = beat_at < seconds, check_at < seconds
            if beat or check:
                # A check rides with a heartbeat due in the same round, at the heartbeat's time.
                due.append(Due(beat_at if beat else check_at, caller, beat, check))
        due.sort(key=lambda item: item.at)
        rps = self._rate(waiting, intervals, check_every)
        return Round(self._within_budget(due, seconds, rps), seconds, base * stretch, rps)

    def _rate(
        self, waiting: list[WaitingCaller], intervals: list[float], check_every: float
    ) -> float:
        """The budget, unless the callers' own timeouts need more: a heartbeat held back by
        the budget would time callers out (many callers that say no timeout, or a short one),
        which costs more than the RPCs it saves (their retries create again); the namespace's
        RESOURCE_EXHAUSTED still pauses the sweep."""
        budget = self.settings.caller_heartbeat_rps
        if budget <= 0:
            return 0.0
        needed = sum(1.0 / interval for interval in intervals if interval > 0)
        if check_every > 0:
            needed += len(waiting) / check_every
        # The stretch makes the callers need the budget exactly, unless timeouts bound them.
        return needed * NEEDED_HEADROOM if needed > budget * 1.001 else budget

    def _within_budget(self, due: list[Due], seconds: float, rps: float) -> list[Due]:
        """The first of `due` that fit the round's budget; a caller's heartbeat before any
        check (a late heartbeat times a caller out, a late check only ends a lost execution
        later), and each sent no earlier than it is due."""
        budget = max(1, round(rps * seconds)) if rps > 0 else 2**31
        beats = sum(1 for item in due if item.heartbeat)
        taken: list[Due] = []
        checks_left = max(0, budget - min(beats, budget))
        for item in due:
            if budget <= 0:
                break
            check = item.check and checks_left > 0
            if item.heartbeat or check:
                checks_left -= int(check)
                budget -= int(item.heartbeat) + int(check)
                taken.append(Due(max(item.at, 0.0), item.caller, item.heartbeat, check))
        return taken

    def heartbeated(self, caller: WaitingCaller) -> None:
        """A heartbeat of `caller` was tried now (delivered or not: it is due again only after
        its interval, as every caller was tried once per interval before)."""
        self._beaten[caller.execution_id] = (caller.token_hash, self._clock())

    def checked(self, execution_id: str) -> None:
        self._checked[execution_id] = self._clock()

    def _since_beaten(self, caller: WaitingCaller, now: float, interval: float) -> float:
        last = self._beaten.get(caller.execution_id)
        if last is not None and last[0] == caller.token_hash:
            return now - last[1]
        since = self._since_created(caller, interval)
        self._beaten[caller.execution_id] = (caller.token_hash, now - since)
        return since

    def _since_checked(self, caller: WaitingCaller, now: float, interval: float) -> float:
        last = self._checked.get(caller.execution_id)
        if last is not None:
            return now - last
        # Nothing is lost by waiting for a first check (as if done at creation, or on first
        # sight): a sweeper that takes over checks nothing at once, and its heartbeats first.
        since = self._since_created(caller, interval)
        since = since if since < interval else 0.0
        self._checked[caller.execution_id] = now - since
        return since

    def _since_created(self, caller: WaitingCaller, interval: float) -> float:
        """As if last done at the execution's creation, when that was less than `interval`
        ago; otherwise (or unknown) `interval`: due at once."""
        if caller.created_at is None:
            return interval
        age = (self._wall() - caller.created_at).total_seconds()
        return interval if age >= interval else max(age, 0.0)

    def _forget_all_but(self, current: set[str]) -> None:
        for remembered in (self._beaten, self._checked):
            for execution_id in remembered.keys() - current:
                del remembered[execution_id]


def _rate(interval: float) -> float:
    return 1.0 / interval if interval > 0 else 0.0
