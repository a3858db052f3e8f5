"""The latency and throughput rig: a dev server, the fake agent side, the real service, a worker."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import uuid
from collections.abc import AsyncIterator

from temporalio.client import Client

from backend.common import temporal_dev_server
from backend.stigmer_service import app
from benchmarks import driver, fake_agent, process
from tests.support import service as in_process
from tests.support.agents import create_agent
from tests.support.processes import Process

# As the workflow runner's default: slots are not what limits these runs.
SLOTS = 100


@dataclasses.dataclass
class Rig:
    server: temporal_dev_server.DevServer
    client: Client
    fake: fake_agent.FakeAgentSide
    fake_endpoint: str
    service_address: str
    work_dir: pathlib.Path
    queue: str = ""
    worker: Process | None = None

    async def start_worker(self, profile: pathlib.Path | None = None) -> None:
        self.stop_worker()
        self.queue = driver.task_queue("rig")
        self.worker = await process.start_worker(
            address=self.server.address,
            task_queue=self.queue,
            slots=SLOTS,
            endpoint=self.service_address,
            work_dir=self.work_dir,
            profile=profile,
        )

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None


@contextlib.asynccontextmanager
async def running(work_dir: pathlib.Path) -> AsyncIterator[Rig]:
    """Everything up, the service in this process (so that it can be profiled here)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    async with driver.temporal() as (server, client), fake_agent.serve() as (fake, endpoint):
        settings = in_process.settings(
            work_dir,
            driver.task_queue("executions"),
            # A database of its own per rig: the agent is created afresh.
            db_name=f"stigmer-{uuid.uuid4().hex[:8]}.db",
            temporal_address=server.address,
            grace_period=1.0,
        )
        async with app.running(settings, client=client) as service:
            await create_agent(service.address, driver.AGENT, driver.ORG)
            rig = Rig(server, client, fake, endpoint, service.address, work_dir)
            try:
                await rig.start_worker()
                yield rig
            finally:
                rig.stop_worker()
