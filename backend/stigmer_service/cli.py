"""Command line of the Stigmer service: the typer app, its server commands (`serve`, `migrate`),
and the client commands of `cli_client` against a running service."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from backend.common import tracing
from backend.stigmer_service import cli_client, logs
from backend.stigmer_service.config import DEFAULT_LISTEN, Settings

app = typer.Typer(
    name="stigmer-service",
    help="Stores agents and agent executions, and calls back the workflows that wait on them.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    pass


@app.command()
def serve(
    listen: Annotated[
        str, typer.Option(envvar="STIGMER_LISTEN", help="HOST:PORT to bind.")
    ] = DEFAULT_LISTEN,
    db: Annotated[
        str | None,
        typer.Option(
            envvar="STIGMER_DB_URL", help="sqlite+aiosqlite:///PATH or postgresql+asyncpg://..."
        ),
    ] = None,
    temporal_address: Annotated[
        str, typer.Option(envvar="TEMPORAL_ADDRESS", help="HOST:PORT of the Temporal frontend.")
    ] = "127.0.0.1:7233",
    temporal_namespace: Annotated[
        str, typer.Option(envvar="TEMPORAL_NAMESPACE", help="Temporal namespace.")
    ] = "default",
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Serve the API only; run no execution worker.")
    ] = False,
    metrics_listen: Annotated[
        str,
        typer.Option(
            envvar="STIGMER_METRICS_LISTEN",
            help="HOST:PORT of the Prometheus /metrics endpoint (off when empty).",
        ),
    ] = "",
    temporal_metrics_listen: Annotated[
        str,
        typer.Option(
            envvar="STIGMER_TEMPORAL_METRICS_LISTEN",
            help="HOST:PORT of Temporal's SDK metrics endpoint (off when empty).",
        ),
    ] = "",
) -> None:
    """Run the gRPC server and the execution workflow's worker until SIGTERM/SIGINT.

    Tracing follows the OTEL_* variables (off unless OTEL_TRACES_EXPORTER or an OTLP endpoint
    is set).
    """
    logs.configure()
    tracing.configure("stigmer-service")
    settings = Settings.from_env()
    settings.metrics_listen = metrics_listen
    settings.temporal_metrics_listen = temporal_metrics_listen
    settings.listen = listen
    settings.temporal_address = temporal_address
    settings.temporal_namespace = temporal_namespace
    if db:
        settings.db_url = db
    from backend.stigmer_service import app as service_app

    def ready(address: str) -> None:
        typer.echo(f"stigmer-service listening on {address}", err=False)

    try:
        asyncio.run(service_app.serve(settings, run_worker=not no_worker, on_ready=ready))
    finally:
        tracing.shutdown()


@app.command()
def migrate(
    db: Annotated[
        str | None,
        typer.Option(envvar="STIGMER_DB_URL", help="Database URL (default: the SQLite file)."),
    ] = None,
) -> None:
    """Create or upgrade the database schema, then exit."""
    from backend.stigmer_service.store import db as database

    settings = Settings.from_env()
    url = db or settings.db_url

    async def run() -> None:
        engine = database.create_engine(url)
        try:
            await database.migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    typer.echo("schema is up to date")


# After the server commands, so that help lists serve and migrate first, as it always did.
cli_client.register(app)
