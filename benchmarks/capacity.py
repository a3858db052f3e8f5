"""Measurement 1: how many agent calls wait at once on one worker with K slots, and at what cost."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import time

from benchmarks import driver, fake_agent, process
from benchmarks.models import HANDSHAKE, POLLING
from tests.support.eventually import eventually


@dataclasses.dataclass
class CapacityResult:
    design: str
    n: int
    slots: int
    in_flight: int  # agent calls created and waiting, all at once
    rss_mb: float  # worker peak RSS while they wait
    idle_rss_mb: float  # the same worker before any workflow
    cpu_percent: float  # worker mean CPU while they wait (% of one core)
    start_seconds: float  # starting the N workflows
    reach_seconds: float  # from the first start until the in-flight count was reached


async def run(
    design: str, n: int, slots: int, window: float, work_dir: pathlib.Path
) -> CapacityResult:
    """N workflows each make one agent call (`design`); the fake agent side never finishes them."""
    target = n if design == HANDSHAKE else min(slots, n)
    async with driver.temporal() as (server, client), fake_agent.serve() as (fake, endpoint):
        queue = driver.task_queue(f"capacity-{design}")
        worker = await process.start_worker(
            address=server.address,
            task_queue=queue,
            slots=slots,
            endpoint=endpoint,
            work_dir=work_dir,
        )
        try:
            idle = await process.sample(worker.pid, 1.0)
            began = time.monotonic()
            await driver.start_bench_calls(
                client, queue, design, [f"job {i}" for i in range(n)], endpoint
            )
            started = time.monotonic()

            async def reached_target() -> None:
                assert fake.open_count >= target

            # A run that falls short is reported with the count it reached (`in_flight`).
            with contextlib.suppress(AssertionError):
                await eventually(reached_target, timeout=120 + n * 0.05)
            reached = time.monotonic()
            # The worker is done with the workflow tasks of the starts; only the waiting remains.
            await process.wait_quiet(worker.pid, threshold=10.0, timeout=30 + n / 100)
            usage = await process.sample(worker.pid, window)
            return CapacityResult(
                design=design if design != POLLING or slots < n else f"{POLLING} (K=N)",
                n=n,
                slots=slots,
                in_flight=fake.open_count,
                rss_mb=usage.rss_mb,
                idle_rss_mb=idle.rss_mb,
                cpu_percent=usage.cpu_percent,
                start_seconds=started - began,
                reach_seconds=reached - began,
            )
        finally:
            worker.stop()
