"""The latency and throughput rig: a dev server, the fake agent side, the real service, a worker."""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import uuid
from collections.abc import AsyncIterator

from cryptography.fernet import Fernet
from temporalio.client import Client

from backend.common import temporal_dev_server
from backend.stigmer_service import app
from benchmarks import driver, fake_agent, process
from tests.support import postgres
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


SQLITE = "sqlite"
POSTGRES = "postgres"


@contextlib.asynccontextmanager
async def _database(database: str, work_dir: pathlib.Path) -> AsyncIterator[str]:
    """A database of its own per rig (the agent is created afresh): a SQLite file, or a fresh
    database on the local PostgreSQL server, dropped afterwards."""
    if database == POSTGRES:
        async with postgres.fresh_database("stigmer_bench") as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{work_dir / f'stigmer-{uuid.uuid4().hex[:8]}.db'}"


@contextlib.asynccontextmanager
async def running(work_dir: pathlib.Path, database: str = SQLITE) -> AsyncIterator[Rig]:
    """Everything up, the service in this process (so that it can be profiled here)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    async with (
        driver.temporal() as (server, client),
        fake_agent.serve() as (fake, endpoint),
        _database(database, work_dir) as db_url,
    ):
        settings = dataclasses.replace(
            in_process.settings(
                work_dir,
                driver.task_queue("executions"),
                temporal_address=server.address,
                grace_period=1.0,
            ),
            db_url=db_url,
            # PostgreSQL is shared: the service wants a configured key rather than a key file.
            secrets_key=Fernet.generate_key().decode(),
        )
        async with app.running(settings, client=client) as service:
            await create_agent(service.address, driver.AGENT, driver.ORG)
            rig = Rig(server, client, fake, endpoint, service.address, work_dir)
            try:
                await rig.start_worker()
                yield rig
            finally:
                rig.stop_worker()
