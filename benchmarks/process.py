"""Starts the worker process and samples its RSS and CPU with psutil."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
import sys
import time
from collections.abc import Mapping

import psutil  # type: ignore[import-untyped]

from tests.support.eventually import eventually
from tests.support.processes import Process, child_env, wait_ready

READY_TIMEOUT_SECONDS = 60.0


async def start_worker(
    *,
    address: str,
    task_queue: str,
    slots: int,
    endpoint: str,
    work_dir: pathlib.Path,
    profile: pathlib.Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Process:
    """A worker in a child Python that imports what this process imports; waits until it polls."""
    work_dir.mkdir(parents=True, exist_ok=True)
    ready = work_dir / f"{task_queue}.ready"
    argv = [
        sys.executable,
        "-m",
        "benchmarks.worker_process",
        "--address",
        address,
        "--task-queue",
        task_queue,
        "--slots",
        str(slots),
        "--endpoint",
        endpoint,
        "--ready-file",
        str(ready),
    ]
    if profile is not None:
        argv += ["--profile", str(profile)]
    worker = Process(
        "benchmark worker", argv, child_env(env), work_dir / f"{task_queue}.log", new_session=False
    )
    worker.start()

    async def polling() -> bool:
        return ready.exists()

    try:
        await wait_ready(worker, polling, "ready file", READY_TIMEOUT_SECONDS)
    except BaseException:
        worker.stop()
        raise
    return worker


@dataclasses.dataclass
class Usage:
    rss_mb: float  # peak over the window
    cpu_percent: float  # mean over the window, of one core


async def sample(pid: int, seconds: float, every: float = 0.5) -> Usage:
    """The process's peak RSS and mean CPU over the next `seconds`."""
    process = psutil.Process(pid)
    before = process.cpu_times()
    started = time.monotonic()
    peak = 0.0
    while True:
        peak = max(peak, process.memory_info().rss / 2**20)
        if time.monotonic() - started >= seconds:
            break
        await asyncio.sleep(every)
    after = process.cpu_times()
    elapsed = time.monotonic() - started
    used = (after.user - before.user) + (after.system - before.system)
    return Usage(rss_mb=peak, cpu_percent=100.0 * used / elapsed)


async def wait_quiet(pid: int, threshold: float, timeout: float) -> None:
    """Waits until the process uses less than `threshold` % CPU over one second (or times out)."""

    async def quiet() -> None:
        assert (await sample(pid, 1.0, every=1.0)).cpu_percent < threshold

    # A worker that never gets quiet is measured all the same.
    with contextlib.suppress(AssertionError):
        await eventually(quiet, timeout=timeout, every=0.0)
