"""The whole system as separate OS processes (dev server, Stigmer service, DSL worker).

Each component runs as its production command (`stigmer-service serve`, `workflow-runner worker`)
in a child Python that sees exactly this test's import path, so the tests exercise the same code
the PEXes ship, and can `kill -9` and restart any of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import sys
import uuid
from collections.abc import AsyncIterator, Mapping

from backend.common import temporal_dev_server
from tests.support.agents import create_agent
from tests.support.processes import Process, child_env, wait_for_log, wait_serving

# Short timers so that a killed component's work is retried within seconds, not minutes.
FAST_SERVICE_ENV = {
    "STIGMER_CALLER_HEARTBEAT_INTERVAL": "1",
    "STIGMER_ACTIVITY_HEARTBEAT_TIMEOUT": "4",
    "STIGMER_GRACE_PERIOD": "2",
}


@dataclasses.dataclass
class Stack:
    """Dev server, Stigmer service and workflow worker, each restartable on the same ports/state."""

    state_dir: pathlib.Path
    temporal: temporal_dev_server.DevServer
    service_port: int
    service_env: Mapping[str, str]
    worker_task_queue: str
    worker_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    service: Process = dataclasses.field(init=False)
    worker: Process = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        common = {
            "TEMPORAL_ADDRESS": self.temporal.address,
            "TEMPORAL_NAMESPACE": "default",
            "STIGMER_ENDPOINT": self.service_address,
        }
        self.service = Process(
            "stigmer-service",
            [sys.executable, "-m", "backend.stigmer_service.main", "serve"],
            child_env(
                common
                | {
                    "STIGMER_LISTEN": self.service_address,
                    "STIGMER_DB_URL": f"sqlite+aiosqlite:///{self.state_dir / 'stigmer.db'}",
                    # The tests' agents run on the offline model, gated by `#wait-for`.
                    "STIGMER_OFFLINE_PROVIDER": "1",
                    "STIGMER_TEST_OFFLINE_GATES": "1",
                }
                | dict(self.service_env)
            ),
            self.state_dir / "service.log",
        )
        self.worker = Process(
            "workflow-runner",
            [
                sys.executable,
                "-m",
                "backend.workflow_runner.main",
                "worker",
                "--task-queue",
                self.worker_task_queue,
            ],
            child_env(common | dict(self.worker_env)),
            self.state_dir / "worker.log",
        )

    @property
    def service_address(self) -> str:
        return f"127.0.0.1:{self.service_port}"

    async def start_service(self) -> None:
        self.service.start()
        await wait_serving(self.service_address, self.service)

    async def start_worker(self) -> None:
        self.worker.start()
        await wait_for_log(self.worker, "worker started")

    def restart_temporal(self) -> None:
        """Stops the dev server and starts it again on the same port and SQLite file."""
        self.temporal.stop()
        self.temporal = temporal_dev_server.launch(
            port=self.temporal.port,
            db_filename=self.temporal.db_filename,
            log_path=self.temporal.log_path,
        )

    def stop(self) -> None:
        for process in (self.worker, self.service):
            process.stop()


@contextlib.asynccontextmanager
async def running(
    state_dir: pathlib.Path,
    *,
    agent: str,
    org: str,
    queue_prefix: str,
    service_env: Mapping[str, str],
    worker_env: Mapping[str, str],
) -> AsyncIterator[Stack]:
    """A stack on a dev server of its own (SQLite in `state_dir`), with `agent` created."""
    temporal = await temporal_dev_server.start(
        db_filename=state_dir / "temporal.db", log_path=state_dir / "temporal.log"
    )
    stack = Stack(
        state_dir=state_dir,
        temporal=temporal,
        service_port=temporal_dev_server.free_port(),
        service_env=service_env,
        worker_task_queue=f"{queue_prefix}-{uuid.uuid4()}",
        worker_env=worker_env,
    )
    try:
        await stack.start_service()
        await stack.start_worker()
        await create_agent(stack.service_address, agent, org)
        yield stack
    finally:
        stack.stop()
        stack.temporal.stop()
