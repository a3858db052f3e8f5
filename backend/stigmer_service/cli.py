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
    tls_cert: Annotated[
        str,
        typer.Option(envvar="STIGMER_TLS_CERT", help="PEM certificate chain: serve TLS."),
    ] = "",
    tls_key: Annotated[
        str, typer.Option(envvar="STIGMER_TLS_KEY", help="PEM private key of --tls-cert.")
    ] = "",
    tls_client_ca: Annotated[
        str,
        typer.Option(
            envvar="STIGMER_TLS_CLIENT_CA",
            help="PEM CA of client certificates: require one (mTLS).",
        ),
    ] = "",
    allow_insecure_public: Annotated[
        bool,
        typer.Option(
            "--allow-insecure-public",
            envvar="STIGMER_ALLOW_INSECURE_PUBLIC",
            help="Serve a non-loopback address without any authentication.",
        ),
    ] = False,
    providers_file: Annotated[
        str,
        typer.Option(
            envvar="STIGMER_PROVIDERS_FILE",
            help="YAML file of the model providers (name -> kind, base_url, key source).",
        ),
    ] = "",
) -> None:
    """Run the gRPC server and the execution workflow's worker until SIGTERM/SIGINT.

    A non-loopback --listen needs authentication (STIGMER_API_TOKEN, STIGMER_CREDENTIALS_FILE
    or --tls-client-ca) unless --allow-insecure-public. Tracing follows the OTEL_* variables
    (off unless OTEL_TRACES_EXPORTER or an OTLP endpoint is set).
    """
    logs.configure()
    tracing.configure("stigmer-service")
    settings = Settings.from_env()
    settings.metrics_listen = metrics_listen
    settings.temporal_metrics_listen = temporal_metrics_listen
    settings.listen = listen
    settings.temporal_address = temporal_address
    settings.temporal_namespace = temporal_namespace
    settings.tls_cert_file = tls_cert
    settings.tls_key_file = tls_key
    settings.tls_client_ca_file = tls_client_ca
    settings.allow_insecure_public = allow_insecure_public
    settings.providers_file = providers_file
    if db:
        settings.db_url = db
    from backend.common.grpc_tls import TlsConfigError
    from backend.stigmer_service import app as service_app
    from backend.stigmer_service.crypto import MissingKey
    from backend.stigmer_service.identity import CredentialsError
    from backend.stigmer_service.providers.catalog import ProviderConfigError
    from backend.stigmer_service.server import InsecureBindError

    def ready(address: str) -> None:
        typer.echo(f"stigmer-service listening on {address}", err=False)

    try:
        asyncio.run(service_app.serve(settings, run_worker=not no_worker, on_ready=ready))
    except (
        InsecureBindError,
        TlsConfigError,
        ProviderConfigError,
        CredentialsError,
        MissingKey,
    ) as error:
        # Configuration the operator must fix: one line saying what, no traceback.
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
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
