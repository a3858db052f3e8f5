"""The whole system as separate OS processes (service, worker, dev server), for fault tests.

Each component runs as its production command (`stigmer-service serve`, `workflow-runner worker`)
in a child Python that sees exactly this test's import path, so the tests exercise the same code
the PEXes ship, and can `kill -9` and restart any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from backend.common import temporal_dev_server


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # The child imports what this process imports: the same sources, stubs and requirements.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(extra)
    return env


@dataclasses.dataclass
class Process:
    """One component's process; its output goes to a log file the tests scan afterwards."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: pathlib.Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no cleanup runs."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


async def wait_serving(address: str, process: Process, timeout: float = 60.0) -> None:
    """Waits until the gRPC health service at `address` says SERVING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running:
            raise RuntimeError(f"{process.name} exited:\n{process.log_text()[-3000:]}")
        with contextlib.suppress(grpc.aio.AioRpcError):
            async with grpc.aio.insecure_channel(address) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        await asyncio.sleep(0.2)
    raise TimeoutError(
        f"{process.name} not serving after {timeout}s:\n{process.log_text()[-3000:]}"
    )


async def wait_for_log(process: Process, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in process.log_text():
            return
        if not process.running:
            raise RuntimeError(f"{process.name} exited:\n{process.log_text()[-3000:]}")
        await asyncio.sleep(0.2)
    raise TimeoutError(
        f"{process.name}: no {text!r} after {timeout}s:\n{process.log_text()[-3000:]}"
    )


@dataclasses.dataclass
class Stack:
    """Dev server, Stigmer service and workflow worker, each restartable on the same ports/state."""

    state_dir: pathlib.Path
    temporal: temporal_dev_server.DevServer
    service_port: int
    service_env: dict[str, str]
    worker_task_queue: str
    worker_env: dict[str, str] = dataclasses.field(default_factory=dict)
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
                }
                | self.service_env
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
            child_env(common | self.worker_env),
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
