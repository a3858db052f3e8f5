"""The benchmarked worker, run as its own OS process so that its RSS and CPU can be read alone.

`python -m benchmarks.worker_process --address ... --task-queue ... --slots 4 --endpoint ...`
"""

from __future__ import annotations

import asyncio
import cProfile
import pathlib
import signal
from datetime import timedelta
from typing import Annotated

import typer
from temporalio.client import Client
from temporalio.worker import Worker

from backend.common import logs, sandbox
from backend.workflow_runner.activities import call_http
from backend.workflow_runner.agent_call.activities import agent_call_activities
from backend.workflow_runner.events.activities import EventActivities
from backend.workflow_runner.events.broker import BrokerSettings
from backend.workflow_runner.workflows import DslWorkflow
from benchmarks.activities import BaselineActivities
from benchmarks.workflows import BenchCallWorkflow, BenchSignalWorkflow

app = typer.Typer(add_completion=False)


async def _run(
    address: str, task_queue: str, slots: int, endpoint: str, ready_file: pathlib.Path
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    client = await Client.connect(address)
    baselines = BaselineActivities()
    # The event activities as the runner's worker has them (NATS_URL from the environment).
    events = EventActivities(BrokerSettings.from_env())
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[DslWorkflow, BenchCallWorkflow, BenchSignalWorkflow],
        activities=[
            call_http,
            *agent_call_activities(endpoint),
            baselines.poll_agent_call,
            baselines.bare_async,
            *events.all(),
        ],
        max_concurrent_activities=slots,
        # Our bench workflow's modules are passed through like `backend`'s (see sandbox.py).
        workflow_runner=sandbox.workflow_runner("benchmarks"),
        graceful_shutdown_timeout=timedelta(seconds=2),
    )
    async with worker:
        ready_file.write_text("ready")
        await stop.wait()
    await baselines.close()
    await events.close()


@app.command()
def main(
    address: Annotated[str, typer.Option(help="Temporal frontend HOST:PORT")],
    task_queue: Annotated[str, typer.Option()],
    slots: Annotated[int, typer.Option(help="max_concurrent_activities")],
    endpoint: Annotated[str, typer.Option(help="the Stigmer service (or fake) for call_agent")],
    ready_file: Annotated[pathlib.Path, typer.Option(help="written once the worker polls")],
    profile: Annotated[pathlib.Path | None, typer.Option(help="write a cProfile here")] = None,
) -> None:
    logs.configure()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    try:
        asyncio.run(_run(address, task_queue, slots, endpoint, ready_file))
    finally:
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(str(profile))


if __name__ == "__main__":
    app()
