"""Child processes of the tests: their environment, their lifecycle, and waiting until they are up."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from tests.support.eventually import eventually


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus `extra`, for a child Python."""
    env = dict(os.environ)
    # The child imports what this process imports: the same sources, stubs and requirements.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(extra or {})
    return env


@dataclasses.dataclass
class Process:
    """One component's process; its output goes to a log file the tests scan afterwards."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: pathlib.Path
    # A session of its own keeps a terminal's Ctrl-C (and the test runner's signals) from it.
    new_session: bool = True
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=self.new_session,
            )

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

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

    def log_tail(self) -> str:
        return self.log_text()[-3000:]


async def wait_ready(
    process: Process, ready: Callable[[], Awaitable[bool]], what: str, timeout: float = 60.0
) -> None:
    """Waits until `ready()` holds; fails at once, with the log's tail, if the process exits."""

    async def up() -> None:
        if not process.running:
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        assert await ready(), f"{process.name}: no {what} after {timeout}s:\n{process.log_tail()}"

    await eventually(up, timeout=timeout, every=0.2)


async def wait_serving(address: str, process: Process, timeout: float = 60.0) -> None:
    """Waits until the gRPC health service at `address` says SERVING."""

    async def serving() -> bool:
        with contextlib.suppress(grpc.aio.AioRpcError):
            async with grpc.aio.insecure_channel(address) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
        return False

    await wait_ready(process, serving, f"SERVING health at {address}", timeout)


async def wait_for_log(process: Process, text: str, timeout: float = 60.0) -> None:
    async def logged() -> bool:
        return text in process.log_text()

    await wait_ready(process, logged, repr(text), timeout)
