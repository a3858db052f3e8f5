"""The event commands of `workflow-runner`: emit, events, router and ingress.

Each reads the broker settings from the environment (NATS_URL and friends, see broker.py) and
exits 2 with the reason when they are missing or the server cannot be reached.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import signal
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from nats.js import api
from temporalio.client import Client

from backend.common import logs
from backend.common import metrics as endpoints
from backend.workflow_runner import metrics
from backend.workflow_runner.claim_check import config as claim_check
from backend.workflow_runner.events import broker as broker_module
from backend.workflow_runner.events import contract, ingress, router
from backend.workflow_runner.events.activities import record_publish
from backend.workflow_runner.events.cloudevent import InvalidEventError

EXIT_INVALID = 1
EXIT_UNAVAILABLE = 2


def register(app: typer.Typer, env: Callable[[str, str], str]) -> None:
    """Adds the event commands to the runner's app (`env(name, default)` reads a setting)."""

    @app.command()
    def emit(
        type_: Annotated[str, typer.Option("--type", help="The event's type.")],
        source: Annotated[str, typer.Option(help="The event's source (a URI reference).")],
        data: Annotated[
            str | None,
            typer.Option(help="The event's data: JSON, or @FILE to read it from a file."),
        ] = None,
        subject: Annotated[str | None, typer.Option(help="The event's subject.")] = None,
        event_id: Annotated[
            str | None, typer.Option("--id", help="The event's id (default: a new uuid).")
        ] = None,
    ) -> None:
        """Publish one CloudEvent; print its id and stream sequence as JSON.

        Exit 1 when the event is not valid, 2 when NATS cannot be reached. Env: NATS_URL.
        """
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": event_id or str(uuid.uuid4()),
            "source": source,
            "type": type_,
        }
        if subject is not None:
            event["subject"] = subject
        if data is not None:
            event["datacontenttype"] = "application/json"
            event["data"] = _read_data(data)
        published = _run(lambda broker: broker.publish(event))
        record_publish(published)
        typer.echo(
            json.dumps(
                {
                    "id": published.id,
                    "sequence": published.sequence,
                    "duplicate": published.duplicate,
                }
            )
        )

    @app.command()
    def events(
        follow: Annotated[
            bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")
        ] = False,
        last: Annotated[int, typer.Option(help="How many of the latest events to show.")] = 20,
    ) -> None:
        """Show the stream's latest events, one JSON line each (sequence and event).

        Env: NATS_URL.
        """
        _run(lambda broker: _show(broker, last, follow))

    @app.command("router")
    def router_command(
        ack_wait: Annotated[
            float,
            typer.Option(help="Seconds before an event a dead router held is redelivered."),
        ] = router.DEFAULT_ACK_WAIT_SECONDS,
        metrics_listen: Annotated[
            str,
            typer.Option(
                envvar="WORKFLOW_RUNNER_METRICS_LISTEN",
                help="HOST:PORT of the Prometheus /metrics endpoint (off when empty).",
            ),
        ] = "",
    ) -> None:
        """Route events to listening workflows and event-driven starts until SIGTERM or SIGINT.

        A process of its own, safe to kill at any time: an event is acknowledged only after
        Temporal accepted what it routes to. Env: NATS_URL, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE.
        """
        logs.configure()
        address = env("TEMPORAL_ADDRESS", "127.0.0.1:7233")
        namespace = env("TEMPORAL_NAMESPACE", "default")

        async def route(broker: broker_module.Broker) -> None:
            # Events start and signal DslWorkflows: a large one goes to the claim-check store.
            temporal = await Client.connect(
                address, namespace=namespace, data_converter=claim_check.data_converter()
            )
            served = endpoints.serve(metrics_listen, metrics.REGISTRY) if metrics_listen else None
            try:
                await router.run_router(broker, temporal, _stop_on_signals(), ack_wait)
            finally:
                if served is not None:
                    served.stop()

        _run(route, "workflow-runner router")

    @app.command("ingress")
    def ingress_command(
        listen: Annotated[
            str, typer.Option(help="HOST:PORT the CloudEvents HTTP endpoint listens on.")
        ] = "127.0.0.1:8088",
    ) -> None:
        """Accept CloudEvents over HTTP (POST /events, binary or structured) until SIGTERM.

        Bearer tokens from STIGMER_CREDENTIALS_FILE / STIGMER_API_TOKEN (see docs/events.md).
        Env: NATS_URL.
        """
        logs.configure()
        try:
            tokens = ingress.Tokens.from_env()
            host, port = endpoints.split_listen(listen)
            if tokens.dev_mode and not ingress.loopback(host):
                raise ValueError(
                    f"{host} is not a loopback address: set {ingress.CREDENTIALS_FILE_ENV} or "
                    f"{ingress.API_TOKEN_ENV} (without tokens the ingress serves loopback only)"
                )
        except (ValueError, OSError) as error:
            typer.echo(f"ingress: {error}", err=True)
            raise typer.Exit(EXIT_UNAVAILABLE) from None
        _run(lambda broker: ingress.serve(broker, tokens, host, port), "workflow-runner ingress")


def _read_data(value: str) -> Any:
    text = value
    if value.startswith("@"):
        try:
            text = pathlib.Path(value[1:]).read_text(encoding="utf-8")
        except OSError as error:
            typer.echo(f"--data: cannot read {value[1:]}: {error}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        typer.echo(f"--data: not valid JSON: {error}", err=True)
        raise typer.Exit(EXIT_INVALID) from None


def _run(body: Callable[[broker_module.Broker], Awaitable[Any]], name: str = "") -> Any:
    """Connects, runs `body`, closes; the exit codes of the event commands."""

    async def main() -> Any:
        settings = broker_module.BrokerSettings.required()
        broker = await asyncio.wait_for(
            broker_module.connect(settings, name or "workflow-runner"), 10
        )
        try:
            return await body(broker)
        finally:
            await broker.close()

    try:
        return asyncio.run(main())
    except broker_module.EventsNotConfiguredError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from None
    except InvalidEventError as invalid:
        typer.echo(f"not a valid CloudEvent: {invalid}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except (OSError, TimeoutError) as error:
        typer.echo(f"NATS is not reachable: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(EXIT_UNAVAILABLE) from None


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _show(broker: broker_module.Broker, last: int, follow: bool) -> None:
    """Prints the latest `last` events, then (following) each new one, from an ephemeral
    consumer that acknowledges nothing."""
    last_sequence = await broker.last_sequence()
    first = max(1, last_sequence - last + 1)
    stop = _stop_on_signals() if follow else asyncio.Event()
    subscription = await broker.js.pull_subscribe(
        contract.SUBJECT_PREFIX + ">",
        stream=contract.STREAM,
        config=api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=first,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=30.0,
        ),
    )
    shown = first - 1
    while not stop.is_set():
        if not follow and shown >= last_sequence:
            break
        try:
            messages = await subscription.fetch(100, timeout=1)
        except TimeoutError:  # nats-py's TimeoutError is one.
            continue
        for message in messages:
            shown = message.metadata.sequence.stream
            typer.echo(json.dumps({"sequence": shown, "event": json.loads(message.data)}))
    await subscription.unsubscribe()
