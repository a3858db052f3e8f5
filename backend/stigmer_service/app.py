"""Wires the service together: database, key, Temporal client, gRPC server and worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import AsyncIterator, Callable

import grpc
from grpc_health.v1 import health  # type: ignore[import-untyped]
from temporalio.client import Client
from temporalio.worker import Worker

from backend.common import metrics as endpoints
from backend.common import tracing
from backend.stigmer_service import crypto, logs, server
from backend.stigmer_service.config import Settings
from backend.stigmer_service.execution.worker import (
    create_worker,
    keep_caller_heartbeats_running,
)
from backend.stigmer_service.metrics import ServiceMetrics
from backend.stigmer_service.providers import catalog, registry
from backend.stigmer_service.store import changes, db
from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)


async def open_store(settings: Settings) -> Store:
    """Loads (or creates) the secrets key, connects to the database and migrates it. Raises
    `crypto.MissingKey` before touching the database when the key must be configured."""
    key = crypto.load_or_create_key(
        settings.secrets_key,
        settings.state_dir(),
        # A key file next to a SQLite file (or in memory) is the dev default; any other
        # database may be shared by replicas on other hosts.
        shared_database=not db.is_sqlite(settings.db_url),
    )
    engine = db.create_engine(
        settings.db_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
    )
    await db.migrate(engine)
    return Store(engine, crypto.Cipher(key))


@dataclasses.dataclass
class Service:
    settings: Settings
    store: Store
    client: Client
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    worker: Worker | None
    metrics: ServiceMetrics = dataclasses.field(default_factory=ServiceMetrics)
    metrics_server: endpoints.MetricsServer | None = None

    @property
    def address(self) -> str:
        host = self.settings.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"


@contextlib.asynccontextmanager
async def running(
    settings: Settings, *, run_worker: bool = True, client: Client | None = None
) -> AsyncIterator[Service]:
    """The started service; on exit: NOT_SERVING, drain the server, then stop the worker.

    Raises before opening anything when the listen address, the TLS files or the model
    providers are misconfigured (server.InsecureBindError, grpc_tls.TlsConfigError,
    catalog.ProviderConfigError).
    """
    server.check_exposure(settings)
    providers = catalog.from_settings(settings)
    with registry.serving(providers):
        async with _running(settings, run_worker=run_worker, client=client) as service:
            yield service


@contextlib.asynccontextmanager
async def _running(
    settings: Settings, *, run_worker: bool, client: Client | None
) -> AsyncIterator[Service]:
    store = await open_store(settings)
    if client is None:
        client = await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            # Trace context from the RPC into the execution workflow, and through its worker.
            interceptors=tracing.temporal_interceptors(),
            runtime=(
                endpoints.temporal_runtime(settings.temporal_metrics_listen)
                if settings.temporal_metrics_listen
                else None
            ),
        )
    metrics = ServiceMetrics()
    metrics.observe_store(store, asyncio.get_running_loop())
    grpc_server, port, health_servicer = server.create_server(
        settings.listen, store=store, client=client, settings=settings
    )
    worker = create_worker(client, store, settings, metrics) if run_worker else None
    worker_task = asyncio.ensure_future(worker.run()) if worker else None
    sweeper_start = (
        asyncio.ensure_future(keep_caller_heartbeats_running(client, settings))
        if worker is not None
        else None
    )
    # Other replicas' writes reach this one's watches (PostgreSQL; None on SQLite).
    listener = changes.start_listening(store.engine, store.changes)
    await grpc_server.start()
    metrics_server = (
        endpoints.serve(settings.metrics_listen, metrics.registry)
        if settings.metrics_listen
        else None
    )
    await server.set_serving(health_servicer)
    service = Service(
        settings,
        store,
        client,
        grpc_server,
        port,
        health_servicer,
        worker,
        metrics,
        metrics_server,
    )
    try:
        yield service
    finally:
        if sweeper_start is not None:
            sweeper_start.cancel()
            with contextlib.suppress(BaseException):
                await sweeper_start
        if metrics_server is not None:
            metrics_server.stop()
        metrics.forget_store()
        await server.set_not_serving(health_servicer)
        await grpc_server.stop(settings.grace_period)
        if worker is not None and worker_task is not None:
            await worker.shutdown()
            with contextlib.suppress(BaseException):
                await worker_task
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(BaseException):
                await listener
        await store.engine.dispose()


async def serve(
    settings: Settings,
    *,
    run_worker: bool,
    on_ready: Callable[[str], None],
    client: Client | None = None,
) -> None:
    """Runs until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running(settings, run_worker=run_worker, client=client) as service:
            log.info(
                "serving",
                address=service.address,
                worker=run_worker,
                metrics=service.metrics_server.address if service.metrics_server else "",
                tracing=tracing.enabled(),
            )
            on_ready(service.address)
            await stop.wait()
            log.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
