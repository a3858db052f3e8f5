"""The system rig: every component a real OS process, as deployed.

One Temporal dev server (in memory, its Prometheus endpoint on), R Stigmer service replicas
(`python -m backend.stigmer_service.main serve`) on one database (a SQLite file, or a fresh
PostgreSQL database), W workflow runner workers (`python -m backend.workflow_runner.main
worker`), the example ticket desk as one MCP server over streamable HTTP, and the driver (this
process). Each process logs to `<work_dir>/<run>-<name>.log`; everything is stopped, and the
PostgreSQL database dropped, when the block ends (also on a SIGTERM that unwinds it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import sys
import uuid
from collections.abc import AsyncIterator, Mapping

from cryptography.fernet import Fernet
from temporalio.client import Client

from backend.common import temporal_dev_server
from benchmarks import driver
from benchmarks.system import baseline
from tests.support import postgres, tickets, tickets_http
from tests.support.processes import Process, child_env, wait_for_log, wait_ready, wait_serving

SQLITE = "sqlite"
POSTGRES = "postgres"
TICKETS = "tickets"
DATABASE_PREFIX = "stigmer_bench_"


@dataclasses.dataclass(frozen=True)
class Layout:
    """Which database, how many service replicas and runner workers."""

    database: str = POSTGRES
    replicas: int = 1
    workers: int = 1
    # The service's and the runners' code: another revision's tree (`--baseline`), else this one.
    source: pathlib.Path | None = None

    def __post_init__(self) -> None:
        if self.database not in (SQLITE, POSTGRES):
            raise ValueError(f"database: {SQLITE} or {POSTGRES}, not {self.database!r}")
        if self.database == SQLITE and self.replicas != 1:
            raise ValueError("SQLite is one file on one machine: one service replica only")

    @property
    def label(self) -> str:
        service = "replica" if self.replicas == 1 else "replicas"
        worker = "worker" if self.workers == 1 else "workers"
        code = f", code of {baseline.short(self.source)}" if self.source else ""
        return f"{self.database}, {self.replicas} {service} + {self.workers} {worker}{code}"

    def env(self, extra: Mapping[str, str]) -> dict[str, str]:
        """A service's or a runner's environment: `extra`, and the baseline's code if any."""
        code = {"PYTHONPATH": baseline.python_path(self.source)} if self.source else {}
        return child_env(dict(extra) | code)


@dataclasses.dataclass
class SystemRig:
    layout: Layout
    temporal: temporal_dev_server.DevServer
    client: Client
    db_url: str
    services: list[Process]
    service_addresses: list[str]
    workers: list[Process]
    desk: Process
    desk_url: str
    queue: str  # The runner workers' task queue, where the driver starts DSL workflows.

    @property
    def metrics_url(self) -> str:
        return f"http://{self.temporal.host}:{self.temporal.metrics_port}/metrics"

    def pids(self) -> dict[str, int]:
        """Every process of the rig by name, the driver (this process) last."""
        named = {"temporal": self.temporal.process.pid}
        named |= {service.name: service.pid for service in self.services}
        named |= {worker.name: worker.pid for worker in self.workers}
        named[TICKETS] = self.desk.pid
        named["driver"] = os.getpid()
        return named


def _python(layout: Layout, module: str) -> list[str]:
    # -P: the working directory (this checkout) must not come before the baseline's code.
    return [sys.executable, *(["-P"] if layout.source else []), "-m", module]


def _service(
    layout: Layout,
    name: str,
    address: str,
    db_url: str,
    temporal: str,
    env: Mapping[str, str],
    log: pathlib.Path,
) -> Process:
    return Process(
        name,
        [*_python(layout, "backend.stigmer_service.main"), "serve"],
        layout.env(
            {
                "STIGMER_LISTEN": address,
                "STIGMER_DB_URL": db_url,
                "TEMPORAL_ADDRESS": temporal,
                "STIGMER_OFFLINE_PROVIDER": "1",
            }
            | dict(env)
        ),
        log,
    )


def _worker(
    layout: Layout, name: str, queue: str, endpoint: str, temporal: str, log: pathlib.Path
) -> Process:
    argv = [*_python(layout, "backend.workflow_runner.main"), "worker", "--task-queue", queue]
    env = layout.env({"TEMPORAL_ADDRESS": temporal, "STIGMER_ENDPOINT": endpoint})
    return Process(name, argv, env, log)


@contextlib.asynccontextmanager
async def _database(layout: Layout, work_dir: pathlib.Path, run: str) -> AsyncIterator[str]:
    if layout.database == POSTGRES:
        # Named after the run, as its logs are: whoever reads them can tell it was dropped.
        async with postgres.fresh_database(f"{DATABASE_PREFIX}{run.rsplit('-', 1)[-1]}") as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{work_dir / f'{run}-stigmer.db'}"


async def _desk_ready(desk: Process, port: int) -> None:
    async def accepts() -> bool:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return True
        return False

    await wait_ready(desk, accepts, f"HTTP on port {port}", timeout=30)


@contextlib.asynccontextmanager
async def running(
    layout: Layout, work_dir: pathlib.Path, service_env: Mapping[str, str] | None = None
) -> AsyncIterator[SystemRig]:
    """The whole system up, each part fresh: no run sees another's workflows or rows."""
    work_dir.mkdir(parents=True, exist_ok=True)
    run = f"{layout.database}-{layout.replicas}x{layout.workers}-{uuid.uuid4().hex[:6]}"
    # Unwound in reverse: the desk, the workers (nothing new starts), the services, then the
    # database is dropped and Temporal stopped; a process that was never started is skipped.
    async with contextlib.AsyncExitStack() as stack:
        temporal = await temporal_dev_server.start(
            db_filename=None, log_path=work_dir / f"{run}-temporal.log"
        )
        stack.callback(temporal.stop)
        db_url = await stack.enter_async_context(_database(layout, work_dir, run))
        client = await Client.connect(temporal.address, runtime=driver.quiet_runtime())
        env = {
            # One key for all replicas: a caller's token one encrypts, another decrypts.
            "STIGMER_SECRETS_KEY": Fernet.generate_key().decode(),
            "STIGMER_TASK_QUEUE": driver.task_queue("executions"),
        } | dict(service_env or {})
        addresses = [f"127.0.0.1:{temporal_dev_server.free_port()}" for _ in range(layout.replicas)]
        services = [
            _service(
                layout, name, address, db_url, temporal.address, env, work_dir / f"{run}-{name}.log"
            )
            for name, address in ((f"service-{i + 1}", a) for i, a in enumerate(addresses))
        ]
        queue = driver.task_queue("dsl")
        workers = [
            # With as many replicas as workers, worker i talks to replica i.
            _worker(
                layout,
                f"worker-{i + 1}",
                queue,
                addresses[i % layout.replicas],
                temporal.address,
                work_dir / f"{run}-worker-{i + 1}.log",
            )
            for i in range(layout.workers)
        ]
        port = temporal_dev_server.free_port()
        desk = Process(
            TICKETS,
            [sys.executable, "-m", tickets.SERVER_MODULE, "--port", str(port)],
            child_env(),
            work_dir / f"{run}-{TICKETS}.log",
        )
        # All at once (replicas' migrations take turns under their own lock); a worker needs
        # no service until its first call.
        for process in (*services, *workers, desk):
            process.start()
            stack.callback(process.stop)
        await asyncio.gather(
            *(wait_serving(address, s) for address, s in zip(addresses, services, strict=True)),
            *(wait_for_log(worker, "worker started") for worker in workers),
            _desk_ready(desk, port),
        )
        yield SystemRig(
            layout=layout,
            temporal=temporal,
            client=client,
            db_url=db_url,
            services=services,
            service_addresses=addresses,
            workers=workers,
            desk=desk,
            desk_url=f"http://127.0.0.1:{port}{tickets_http.MCP_PATH}",
            queue=queue,
        )
