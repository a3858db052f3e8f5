"""System capacity: N agent calls waiting at once through the real stack, then all back.

(a) approval: the gated agent's first turn asks for a tool; each execution then waits for a
    person (a durable timer and a signal, no activity). The driver approves them all.
(b) slow model: the plain agent's model sleeps S seconds (`#sleep=S`), so each execution's
    `run_agent` activity runs, heartbeating, until the sleep ends on its own.

Both wait with every caller heartbeated by the service's sweeper. See docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import WorkflowHandle

from benchmarks.system import calls, rig, sampling
from benchmarks.system.database import StoreProbe

APPROVAL = "approval"
SLOW_MODEL = "slow model"
VISIBILITY = "WorkflowType = 'DslWorkflow'"
# Result reads in flight at once when every workflow has closed (each is one short RPC then).
RESULT_CONCURRENCY = 64


@dataclasses.dataclass
class CapacityResult:
    scenario: str
    n: int
    layout: str
    in_flight: int  # the most calls seen waiting at once
    sampled: int  # calls waiting when the window began (N when all are in flight)
    back: int  # DSL workflows that completed with the agent's real answer
    failed: int  # DSL workflows that failed, timed out, or never closed
    reach_seconds: float  # from the first start until all N were in flight (or gave up)
    back_seconds: float  # from the first start until every workflow had closed
    release_seconds: float  # approval: first decision -> all back; slow model: 0
    sleep_seconds: float  # the slow model's S; 0 for approval
    waiting: sampling.Window  # processes and Temporal while the calls wait
    db_bytes: int  # once all are in flight
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def heartbeats_per_call_hour(self) -> float:
        """The idle cost of one waiting call: heartbeat RPCs per second x 3600 / the calls
        waiting in the window."""
        if not self.sampled:
            return float("nan")
        return self.waiting.rpcs_per_second.get(sampling.HEARTBEAT, 0.0) * 3600 / self.sampled


@dataclasses.dataclass
class Timing:
    window: float  # seconds of the waiting sample
    settle: float  # pause after all are in flight, before sampling
    deadline: float  # time.monotonic() by which the run stops waiting (the time box)

    def left(self) -> float:
        return self.deadline - time.monotonic()


async def _until(
    probe: Callable[[], Awaitable[int]], target: int, timeout: float, every: float = 1.0
) -> tuple[int, bool]:
    """Polls `probe` until it reaches `target`; returns the peak seen and whether it did."""
    deadline = time.monotonic() + timeout
    peak = 0
    while True:
        peak = max(peak, await probe())
        if peak >= target:
            return peak, True
        if time.monotonic() > deadline:
            return peak, False
        await asyncio.sleep(every)


async def _reach(
    waiting: Callable[[], Awaitable[int]],
    ended: Callable[[], Awaitable[int]],
    n: int,
    timeout: float,
) -> tuple[int, int]:
    """Polls until all N calls wait, or every call waits or has ended (a call that ended early
    will not wait again), or the timeout; returns the most seen waiting and those ended."""
    deadline = time.monotonic() + timeout
    peak = 0
    while True:
        now = await waiting()
        peak = max(peak, now)
        gone = await ended()
        if now >= n or now + gone >= n or time.monotonic() > deadline:
            return peak, gone
        await asyncio.sleep(1.0)


async def _count(system: rig.SystemRig, status: str = "") -> int:
    """DSL workflows (in `status`), from Temporal's visibility: no per-workflow polls."""
    query = f"{VISIBILITY} AND ExecutionStatus = '{status}'" if status else VISIBILITY
    return (await system.client.count_workflows(query)).count


async def _closed(system: rig.SystemRig) -> int:
    return await _count(system) - await _count(system, "Running")


async def _check_results(
    handles: list[WorkflowHandle[Any, Any]], messages: list[str], gated: bool
) -> tuple[int, int]:
    """(came back, failed): each closed workflow's result read once, after the timing."""
    gate = asyncio.Semaphore(RESULT_CONCURRENCY)

    async def one(handle: WorkflowHandle[Any, Any], message: str) -> bool:
        async with gate:
            try:
                result = await asyncio.wait_for(handle.result(), 30)
            except Exception:
                return False
            return calls.came_back(result, message, gated)

    outcomes = await asyncio.gather(*(one(h, m) for h, m in zip(handles, messages, strict=True)))
    good = sum(outcomes)
    return good, len(outcomes) - good


async def run(
    scenario: str,
    n: int,
    layout: rig.Layout,
    work_dir: pathlib.Path,
    timing: Timing,
    sleep_seconds: float = 0.0,
) -> CapacityResult:
    gated = scenario == APPROVAL
    # Approval runs with the service's defaults. The slow model's `run_agent` holds a slot while
    # it sleeps, N of them at once, and sleeps longer than the offline model allows by default.
    env = (
        {}
        if gated
        else {
            "STIGMER_MAX_CONCURRENT_ACTIVITIES": str(max(2000, n + 200)),
            "STIGMER_OFFLINE_MAX_SLEEP": str(max(60.0, sleep_seconds + 60)),
        }
    )
    async with rig.running(layout, work_dir, env) as system:
        await calls.create_agents(system)
        probe = StoreProbe(system.db_url)
        try:
            return await _measure(system, probe, scenario, n, timing, sleep_seconds, gated)
        finally:
            await probe.close()


async def _measure(
    system: rig.SystemRig,
    probe: StoreProbe,
    scenario: str,
    n: int,
    timing: Timing,
    sleep_seconds: float,
    gated: bool,
) -> CapacityResult:
    if gated:
        messages = [f"call {i}\n{calls.TOOL_DIRECTIVE}" for i in range(n)]
        waiting = probe.count_awaiting
    else:
        messages = [f"call {i} #sleep={sleep_seconds:g}" for i in range(n)]
        waiting = probe.count_running
    agent = calls.GATED_AGENT if gated else calls.PLAIN_AGENT
    notes: list[str] = []
    began = time.monotonic()
    handles = await calls.start(system, agent, messages)
    in_flight, ended = await _reach(waiting, probe.count_ended, n, timing.left())
    reach_seconds = time.monotonic() - began
    if in_flight < n:
        notes.append(
            f"{scenario} N={n}: at most {in_flight} in flight at once "
            f"({ended} executions had ended by {reach_seconds:.0f} s)"
        )
    db_bytes = await probe.size_bytes()
    # The start burst's last workflow tasks end; then only the waiting is left.
    await asyncio.sleep(timing.settle)
    sampled = await waiting()
    window = await sampling.window(system.pids(), system.metrics_url, timing.window)
    release = time.monotonic()
    if gated:
        refused = await _approve_all(system, probe, n, timing.left())
        if refused:
            notes.append(f"{scenario} N={n}: {refused} DecideToolCall RPCs refused")
    closed, all_closed = await _until(lambda: _closed(system), n, timing.left())
    done = time.monotonic()
    if all_closed:
        back, failed = await _check_results(handles, messages, gated)
    else:
        # Time box: the answers of the closed ones are not read, their outcome is counted.
        back = await _count(system, "Completed")
        failed = closed - back
        notes.append(
            f"{scenario} N={n}: time box reached, {closed} of {n} workflows closed after "
            f"{done - began:.0f} s ({back} completed; their answers not read)"
        )
    return CapacityResult(
        scenario=scenario,
        n=n,
        layout=system.layout.label,
        in_flight=in_flight,
        sampled=sampled,
        back=back,
        failed=failed,
        reach_seconds=reach_seconds,
        back_seconds=done - began,
        release_seconds=done - release if gated else 0.0,
        sleep_seconds=sleep_seconds,
        waiting=window,
        db_bytes=db_bytes,
        notes=notes,
    )


async def _approve_all(system: rig.SystemRig, probe: StoreProbe, n: int, timeout: float) -> int:
    """Approves every call awaiting a decision, again for late or refused ones, until all N
    are decided; returns how many DecideToolCall RPCs were refused on the way."""
    decided: set[str] = set()
    refused = 0
    deadline = time.monotonic() + timeout
    # Until every call is decided or has ended without waiting (it never will).
    while len(decided) + await probe.count_failed() < n and time.monotonic() < deadline:
        fresh = [i for i in await probe.awaiting_approval() if i not in decided]
        failed = await calls.approve(system, fresh) if fresh else []
        refused += len(failed)
        decided.update(set(fresh) - set(failed))
        if not fresh or failed:
            await asyncio.sleep(1.0)
    return refused
