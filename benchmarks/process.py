"""Starts the worker process and samples its RSS and CPU with psutil."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import time

import psutil  # type: ignore[import-untyped]

READY_TIMEOUT_SECONDS = 60.0


@dataclasses.dataclass
class WorkerProcess:
    popen: subprocess.Popen[bytes]
    log_path: pathlib.Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


async def start_worker(
    *,
    address: str,
    task_queue: str,
    slots: int,
    endpoint: str,
    work_dir: pathlib.Path,
    profile: pathlib.Path | None = None,
) -> WorkerProcess:
    """A worker in a child Python that imports what this process imports; waits until it polls."""
    work_dir.mkdir(parents=True, exist_ok=True)
    ready = work_dir / f"{task_queue}.ready"
    log_path = work_dir / f"{task_queue}.log"
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
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    worker = WorkerProcess(popen, log_path)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not ready.exists():
        if popen.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"benchmark worker did not start:\n{tail}")
        await asyncio.sleep(0.1)
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await sample(pid, 1.0, every=1.0)).cpu_percent < threshold:
            return
