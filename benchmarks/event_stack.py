"""The event benchmark's rig: an embedded NATS, a dev server, the worker and the router as processes."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import sys
import uuid
from collections.abc import AsyncIterator

from temporalio.client import Client

from backend.common import nats_server, temporal_dev_server
from backend.workflow_runner.events import broker as broker_module
from benchmarks import driver, process
from benchmarks.system import sampling
from tests.support.processes import Process, child_env, wait_for_log

# As the workflow runner's default: slots are not what limits these runs.
SLOTS = 100
# The processes an event's delivery costs CPU in (the driver publishes and signals).
PROCESSES = ("temporal", "worker", "router", "nats", "driver")


@dataclasses.dataclass
class EventRig:
    nats: nats_server.NatsServer
    server: temporal_dev_server.DevServer
    client: Client
    broker: broker_module.Broker  # The driver's own connection, to publish.
    worker: Process
    router: Process
    queue: str

    def cpu_seconds(self) -> dict[str, float]:
        """User + system seconds so far of each process (0 for one that is gone)."""
        pids = [
            self.server.process.pid,
            self.worker.pid,
            self.router.pid,
            self.nats.process.pid,
            os.getpid(),
        ]
        return sampling.cpu_seconds(dict(zip(PROCESSES, pids, strict=True)))


def _router(work_dir: pathlib.Path, env: dict[str, str]) -> Process:
    argv = [sys.executable, "-m", "backend.workflow_runner.main", "router"]
    return Process(
        "event router", argv, child_env(env), work_dir / f"router-{uuid.uuid4().hex[:6]}.log"
    )


@contextlib.asynccontextmanager
async def running(work_dir: pathlib.Path) -> AsyncIterator[EventRig]:
    """Everything fresh: a NATS store and an in-memory dev server of this run's own."""
    work_dir.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:8]
    nats = await nats_server.start(work_dir / f"nats-{run}", log_path=work_dir / f"nats-{run}.log")
    try:
        async with driver.temporal() as (server, client):
            env = {"NATS_URL": nats.url, "TEMPORAL_ADDRESS": server.address}
            queue = driver.task_queue("events")
            worker = await process.start_worker(
                address=server.address,
                task_queue=queue,
                slots=SLOTS,
                endpoint="127.0.0.1:1",  # No agent calls here.
                work_dir=work_dir,
                env=env,
            )
            router = _router(work_dir, env)
            broker = await broker_module.connect(
                broker_module.BrokerSettings(url=nats.url), "benchmark driver"
            )
            try:
                router.start()
                await wait_for_log(router, "router started")
                yield EventRig(nats, server, client, broker, worker, router, queue)
            finally:
                await broker.close()
                router.stop()
                worker.stop()
    finally:
        nats.stop()
