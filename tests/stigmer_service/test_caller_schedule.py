"""The caller sweeper's pacing (issue 17): each caller heartbeated when it is due, all of them
within one RPC budget, none beyond a quarter of its own heartbeat timeout."""

from __future__ import annotations

import datetime
from collections import defaultdict

import pytest

from backend.stigmer_service.config import Settings
from backend.stigmer_service.execution.caller_schedule import CallerSchedule, Round
from backend.stigmer_service.store.records import CallerRef, WaitingCaller

EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
TEN_MINUTES = 600.0


class Clocks:
    """A monotonic clock and a wall clock that move together, by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime.datetime:
        return EPOCH + datetime.timedelta(seconds=self.now)

    def ago(self, seconds: float) -> datetime.datetime:
        return self.wall() - datetime.timedelta(seconds=seconds)


def waiting(
    count: int,
    timeout: float = TEN_MINUTES,
    created_at: datetime.datetime | None = None,
    prefix: str = "aex",
) -> list[WaitingCaller]:
    return [
        WaitingCaller(
            f"{prefix}-{i}",
            b"token",
            f"hash-{i}",
            CallerRef(workflow_id=f"caller-{i}", heartbeat_timeout=timeout),
            created_at=created_at,
        )
        for i in range(count)
    ]


def schedule(clocks: Clocks, **settings: float) -> CallerSchedule:
    return CallerSchedule(Settings(**settings), clock=clocks.monotonic, wall=clocks.wall)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("count", "timeout", "interval"),
    [
        # A small deployment keeps the 10 s cadence, whatever the callers' timeouts.
        (1, TEN_MINUTES, 10.0),
        (850, TEN_MINUTES, 10.0),
        (850, 60.0, 10.0),
        # 10,000 callers share 100 RPC/s: heartbeats every 10 s x 11.67 (checks stretch too).
        (10_000, TEN_MINUTES, 116.67),
        # ... but never beyond a quarter of the caller's timeout: an older runner's 60 s.
        (10_000, 60.0, 15.0),
        (10_000, 0.0, 15.0),  # One that says none is taken for 60 s.
        (100_000, TEN_MINUTES, 150.0),
    ],
)
def test_the_interval_stretches_with_the_waiting_callers_within_the_callers_timeout(
    count: int, timeout: float, interval: float
) -> None:
    plan = schedule(Clocks())
    stretch = plan.stretch(count)
    caller = waiting(1, timeout)[0]
    assert plan.heartbeat_interval(caller, stretch) == pytest.approx(interval, abs=0.01)


def test_no_budget_keeps_the_base_interval() -> None:
    plan = schedule(Clocks(), caller_heartbeat_rps=0)
    assert plan.stretch(1_000_000) == 1.0


def beats(round_: Round) -> dict[str, float]:
    """When (seconds into the round) each caller of the round is heartbeated."""
    return {due.caller.execution_id: due.at for due in round_.due if due.heartbeat}


def checks(round_: Round) -> dict[str, float]:
    return {due.caller.execution_id: due.at for due in round_.due if due.check}


def run_rounds(
    plan: CallerSchedule, clocks: Clocks, callers: list[WaitingCaller], seconds: float
) -> list[tuple[float, str]]:
    """Runs the rounds for `seconds`, each RPC sent at its time: (when, "heartbeat"|"check")."""
    sent: list[tuple[float, str]] = []
    end = clocks.now + seconds
    while clocks.now < end:
        began = clocks.now
        round_ = plan.plan(callers)
        for due in round_.due:
            clocks.now = began + due.at
            if due.check:
                plan.checked(due.caller.execution_id)
                sent.append((clocks.now, "check"))
            if due.heartbeat:
                plan.heartbeated(due.caller)
                sent.append((clocks.now, "heartbeat"))
        clocks.now = began + round_.seconds
    return sent


def test_a_fresh_caller_is_first_heartbeated_one_interval_after_its_creation() -> None:
    clocks = Clocks()
    plan = schedule(clocks)
    created = clocks.now - 1.0
    [fresh] = waiting(1, created_at=clocks.ago(1.0))
    sent = run_rounds(plan, clocks, [fresh], 65.0)
    beats = [at - created for at, kind in sent if kind == "heartbeat"]
    assert beats[:6] == pytest.approx([10.0, 20.0, 30.0, 40.0, 50.0, 60.0])
    # Its execution's workflow is first checked one check interval after its creation.
    assert [at - created for at, kind in sent if kind == "check"] == pytest.approx([60.0])


def test_a_caller_is_heartbeated_again_one_interval_after_the_last_time() -> None:
    clocks = Clocks()
    plan = schedule(clocks)
    [caller] = waiting(1, created_at=clocks.ago(3600))
    assert beats(plan.plan([caller])) == {"aex-0": 0.0}
    clocks.now += 0.5  # Sent half a second into the round.
    plan.heartbeated(caller)
    clocks.now += 9.5  # The next round: due half a second into it again.
    assert beats(plan.plan([caller])) == {"aex-0": pytest.approx(0.5)}


def test_a_caller_never_seen_and_older_than_an_interval_is_due_at_once() -> None:
    """A sweeper that takes over from another replica does not know when the callers were last
    heartbeated: it heartbeats them at once (checks of their workflows wait, they cost nothing
    when late)."""
    clocks = Clocks()
    plan = schedule(clocks)
    callers = [*waiting(2, created_at=clocks.ago(3600)), *waiting(1, prefix="unknown")]
    first = plan.plan(callers)
    assert beats(first) == {"aex-0": 0.0, "aex-1": 0.0, "unknown-0": 0.0}
    assert checks(first) == {}


def test_a_new_token_is_heartbeated_at_once() -> None:
    """A retried caller's new attempt gave the execution a new token: heartbeat it now rather
    than one interval after the old one's last heartbeat."""
    clocks = Clocks()
    plan = schedule(clocks)
    [caller] = waiting(1, created_at=clocks.ago(3600))
    plan.plan([caller])
    plan.heartbeated(caller)
    clocks.now += 1.0
    assert beats(plan.plan([caller])) == {"aex-0": pytest.approx(9.0)}
    retried = WaitingCaller(
        caller.execution_id, b"new", "hash-new", caller.caller, caller.created_at
    )
    assert beats(plan.plan([retried])) == {"aex-0": 0.0}


def test_a_round_takes_at_most_its_share_of_the_budget_the_most_overdue_first() -> None:
    clocks = Clocks()
    plan = schedule(clocks, caller_heartbeat_rps=10.0)
    late = waiting(30, created_at=clocks.ago(3600), prefix="late")
    on_time = waiting(300, created_at=clocks.ago(3600), prefix="on-time")
    plan.plan(late + on_time)
    for caller in on_time:
        plan.heartbeated(caller)
    clocks.now += 300.0  # 330 callers at 10/s: every 38.5 s; the "late" ones 300 s overdue.
    round_ = plan.plan(on_time + late)
    assert round_.seconds == 10.0
    assert sum(due.rpcs for due in round_.due) == 100  # 10/s for a 10 s round.
    assert [due.caller for due in round_.due[:30]] == late
    # Heartbeats before checks: the checks due (all of them, 300 s after first sight) wait.
    assert checks(round_) == {}


def test_a_caller_with_a_short_timeout_shortens_the_rounds() -> None:
    clocks = Clocks()
    plan = schedule(clocks)
    assert plan.plan(waiting(3, timeout=20.0)).seconds == 5.0
    assert plan.plan(waiting(3, timeout=1.0)).seconds == 1.0  # Rounds of at least 1 s.
    assert plan.plan(waiting(3)).seconds == 10.0


def simulate(
    count: int, timeout: float, hours: float, warm_up: float = 0.0, **settings: float
) -> dict[str, float]:
    """Runs the schedule's rounds for `warm_up` + `hours` on `count` callers (created an hour
    earlier), every planned RPC sent at its time, the token bucket's pace at most; returns,
    after the warm-up, the RPCs per second, RPCs per caller per hour, and the longest gap
    between two heartbeats of one caller."""
    clocks = Clocks()
    plan = schedule(clocks, **settings)
    callers = waiting(count, timeout, created_at=clocks.ago(3600))
    last: dict[str, float] = {}
    gaps: dict[str, float] = defaultdict(float)
    sent = {"heartbeats": 0, "checks": 0}
    counted_from = clocks.now + warm_up * 3600  # Once the first backlog has spread out.
    sent_last = 0.0
    while clocks.now < counted_from + hours * 3600:
        began = clocks.now
        counting = began >= counted_from
        round_ = plan.plan(callers)
        for due in round_.due:
            # At its time, and no sooner than the token bucket allows (one RPC each).
            clocks.now = max(began + due.at, sent_last + due.rpcs / round_.rps)
            sent_last = clocks.now
            if due.check:
                plan.checked(due.caller.execution_id)
                sent["checks"] += counting
            if due.heartbeat:
                plan.heartbeated(due.caller)
                sent["heartbeats"] += counting
                previous = last.get(due.caller.execution_id)
                if counting and previous is not None:
                    gap = clocks.now - previous
                    gaps[due.caller.execution_id] = max(gaps[due.caller.execution_id], gap)
                last[due.caller.execution_id] = clocks.now
        clocks.now = max(clocks.now, began + round_.seconds)
    hours_run = (clocks.now - counted_from) / 3600
    rpcs = sent["heartbeats"] + sent["checks"]
    return {
        "rps": rpcs / (hours_run * 3600),
        "per_caller_hour": rpcs / count / hours_run,
        "heartbeats_per_caller_hour": sent["heartbeats"] / count / hours_run,
        "checks_per_caller_hour": sent["checks"] / count / hours_run,
        "longest_gap": max(gaps.values()),
    }


def test_many_callers_stay_within_the_budget_and_their_timeouts() -> None:
    """2,000 callers with 10 min timeouts on a budget of 20 RPC/s: the same ratio as 10,000 on
    the default 100/s. The rate is the budget, not 2,000 / 10 s + checks (233/s), and every
    caller is still heartbeated well within a quarter of its timeout."""
    result = simulate(2_000, TEN_MINUTES, hours=0.5, warm_up=0.5, caller_heartbeat_rps=20.0)
    assert result["rps"] <= 20.0 * 1.02
    assert result["rps"] >= 20.0 * 0.9
    assert result["longest_gap"] <= TEN_MINUTES / 4
    # 36 RPCs per caller per hour (heartbeats and checks), instead of 360 + 60.
    assert result["per_caller_hour"] == pytest.approx(36.0, rel=0.05)


def test_a_small_deployment_keeps_the_10_s_cadence() -> None:
    result = simulate(100, TEN_MINUTES, hours=0.25, warm_up=0.05)
    assert result["heartbeats_per_caller_hour"] == pytest.approx(360.0, rel=0.01)
    assert result["checks_per_caller_hour"] == pytest.approx(60.0, rel=0.05)
    # 10 s, and a second more when 100 checks fall due at once (the token bucket's pace).
    assert result["longest_gap"] <= 11.0


def test_callers_that_say_no_timeout_are_heartbeated_within_a_quarter_of_60_s() -> None:
    """5,000 callers of older runners (60 s timeouts) need 333 heartbeats per second: the
    budget of 50 gives way rather than let them time out."""
    result = simulate(5_000, 0.0, hours=0.05, warm_up=0.02, caller_heartbeat_rps=50.0)
    assert result["longest_gap"] <= 15.0 + 1.0
    # Every 15 s at most (240 an hour), a little later when they queue at the token bucket.
    assert 220.0 <= result["heartbeats_per_caller_hour"] <= 240.0
    assert result["rps"] > 300.0
