"""Command line of the Stigmer service: `serve` and client commands against a running service."""

from __future__ import annotations

import asyncio
import datetime
import enum
import json
import os
import pathlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import grpc
import typer
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_grpc
from ai.stigmer.agentic.agent.v1 import query_pb2 as agent_query_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2_grpc as agent_query_grpc
from ai.stigmer.agentic.agentexecution.v1 import (
    command_pb2,
    command_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    status_pb2,
)
from google.protobuf import json_format
from google.protobuf.message import Message

from backend.common import tracing
from backend.stigmer_service import logs, manifests
from backend.stigmer_service.config import DEFAULT_LISTEN, Settings

app = typer.Typer(
    name="stigmer-service",
    help="Stores agents and agent executions, and calls back the workflows that wait on them.",
    no_args_is_help=True,
    add_completion=False,
)

T = TypeVar("T")


class Output(enum.StrEnum):
    text = "text"
    json = "json"


class Kind(enum.StrEnum):
    agent = "agent"
    execution = "execution"


class Kinds(enum.StrEnum):
    agents = "agents"
    executions = "executions"


Endpoint = Annotated[
    str, typer.Option(envvar="STIGMER_ENDPOINT", help="HOST:PORT of the running service.")
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="text or json.")]


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


def _metadata() -> tuple[tuple[str, str], ...]:
    token = os.environ.get("STIGMER_API_TOKEN", "")
    return (("authorization", f"Bearer {token}"),) if token else ()


def _call(endpoint: str, body: Callable[[grpc.aio.Channel], Awaitable[T]]) -> T:
    async def run() -> T:
        async with grpc.aio.insecure_channel(endpoint) as channel:
            return await body(channel)

    try:
        return asyncio.run(run())
    except grpc.aio.AioRpcError as error:
        typer.echo(f"error: {error.code().name}: {error.details()}", err=True)
        raise typer.Exit(1) from None


def _json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=False)


def _print(messages: list[Message], output: Output, text: Callable[[Any], str]) -> None:
    if output == Output.json:
        body: Any = _json(messages[0]) if len(messages) == 1 else [_json(m) for m in messages]
        typer.echo(json.dumps(body, indent=2))
    else:
        for message in messages:
            typer.echo(text(message))


def _agent_line(agent: Any) -> str:
    return f"{agent.metadata.id}  {agent.metadata.org or '-'}/{agent.metadata.slug}  {agent.spec.model or 'offline/echo'}"


def _phase(execution: Any) -> str:
    return str(status_pb2.ExecutionPhase.Name(execution.status.phase)).removeprefix(
        "EXECUTION_PHASE_"
    )


def _execution_text(execution: Any) -> str:
    lines = [
        f"{execution.metadata.id}  {_phase(execution)}  agent={execution.spec.agent_id}  "
        f"session={execution.spec.session_id}"
    ]
    if execution.status.output:
        lines.append(f"  output: {execution.status.output}")
    if execution.status.error.type:
        lines.append(f"  error: {execution.status.error.type}: {execution.status.error.message}")
    callback = execution.status.callback
    if callback.token_present:
        state = status_pb2.CallbackState.Name(callback.state).removeprefix("CALLBACK_STATE_")
        lines.append(
            f"  callback: {state} (token {callback.token_hash}, attempts {callback.attempts})"
        )
    return "\n".join(lines)


@app.command()
def apply(
    file: Annotated[
        pathlib.Path, typer.Option("-f", "--file", help="YAML manifest(s) of kind Agent.")
    ],
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """Create or update the agents of a manifest file (several documents allowed)."""
    try:
        agents = manifests.parse_agents(file.read_text())
    except (OSError, ValueError) as error:
        typer.echo(f"error: {file}: {error}", err=True)
        raise typer.Exit(1) from None

    async def body(channel: grpc.aio.Channel) -> list[Message]:
        stub = agent_command_grpc.AgentCommandServiceStub(channel)
        return [
            await stub.ApplyAgent(
                agent_command_pb2.ApplyAgentRequest(agent=a), metadata=_metadata()
            )
            for a in agents
        ]

    applied = _call(endpoint, body)
    _print(applied, output, lambda a: f"agent {_agent_line(a)} applied")


@app.command()
def get(
    kind: Annotated[Kind, typer.Argument(help="agent or execution.")],
    resource_id: Annotated[str, typer.Argument(metavar="ID")],
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """Show one agent or execution."""

    async def body(channel: grpc.aio.Channel) -> Message:
        if kind == Kind.agent:
            return await agent_query_grpc.AgentQueryServiceStub(channel).GetAgent(
                agent_query_pb2.GetAgentRequest(id=resource_id), metadata=_metadata()
            )
        return await query_pb2_grpc.AgentExecutionQueryServiceStub(channel).GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=resource_id), metadata=_metadata()
        )

    found = _call(endpoint, body)
    _print([found], output, _agent_line if kind == Kind.agent else _execution_text)


@app.command("list")
def list_(
    kind: Annotated[Kinds, typer.Argument(help="agents or executions.")],
    org: Annotated[str, typer.Option(help="Organization of the agents.")] = "",
    phase: Annotated[
        list[str] | None,
        typer.Option(help="Only executions in this phase (repeatable), e.g. RUNNING."),
    ] = None,
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """List agents or executions (newest executions first)."""
    try:
        phases = [
            status_pb2.ExecutionPhase.Value(f"EXECUTION_PHASE_{p.upper()}") for p in phase or []
        ]
    except ValueError:
        typer.echo(f"error: unknown phase in {phase}", err=True)
        raise typer.Exit(2) from None

    async def body(channel: grpc.aio.Channel) -> list[Message]:
        if kind == Kinds.agents:
            agents = await agent_query_grpc.AgentQueryServiceStub(channel).ListAgents(
                agent_query_pb2.ListAgentsRequest(org=org, page_size=500), metadata=_metadata()
            )
            return list(agents.agents)
        executions = await query_pb2_grpc.AgentExecutionQueryServiceStub(
            channel
        ).ListAgentExecutions(
            query_pb2.ListAgentExecutionsRequest(phases=phases, page_size=500), metadata=_metadata()
        )
        return list(executions.executions)

    found = _call(endpoint, body)
    if output == Output.json:
        typer.echo(json.dumps([_json(m) for m in found], indent=2))
    else:
        _print(found, output, _agent_line if kind == Kinds.agents else _execution_text)


@app.command()
def watch(
    execution_id: Annotated[str, typer.Argument(metavar="EXECUTION_ID")],
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """Follow an execution live until it ends."""

    async def body(channel: grpc.aio.Channel) -> None:
        stream = query_pb2_grpc.AgentExecutionQueryServiceStub(channel).WatchAgentExecution(
            query_pb2.WatchAgentExecutionRequest(id=execution_id), metadata=_metadata()
        )
        shown = 0
        async for execution in stream:
            if output == Output.json:
                typer.echo(json.dumps(_json(execution)))
                continue
            for message in execution.status.messages[shown:]:
                role = status_pb2.MessageRole.Name(message.role).removeprefix("MESSAGE_ROLE_")
                typer.echo(f"[{role.lower()}] {message.content}")
            shown = len(execution.status.messages)
            typer.echo(f"phase: {_phase(execution)}")

    _call(endpoint, body)


@app.command()
def cancel(
    execution_id: Annotated[str, typer.Argument(metavar="EXECUTION_ID")],
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """Cancel a pending or running execution."""

    async def body(channel: grpc.aio.Channel) -> Message:
        return await command_pb2_grpc.AgentExecutionCommandServiceStub(
            channel
        ).CancelAgentExecution(
            command_pb2.CancelAgentExecutionRequest(id=execution_id, reason=reason),
            metadata=_metadata(),
        )

    _print([_call(endpoint, body)], output, _execution_text)


def _caller_row(execution: Any, now: datetime.datetime) -> dict[str, Any]:
    """What an operator needs about one waiting caller; the token only as its short hash."""
    callback = execution.status.callback
    created = execution.metadata.audit.created_at.ToDatetime(datetime.UTC)
    ended = (
        execution.status.completed_at.ToDatetime(datetime.UTC)
        if execution.status.HasField("completed_at")
        else None
    )
    return {
        "execution_id": execution.metadata.id,
        "agent_id": execution.spec.agent_id,
        "phase": _phase(execution),
        "callback_state": status_pb2.CallbackState.Name(callback.state).removeprefix(
            "CALLBACK_STATE_"
        ),
        "age_seconds": round((now - created).total_seconds(), 1),
        "ended_seconds_ago": None if ended is None else round((now - ended).total_seconds(), 1),
        "attempts": callback.attempts,
        "last_error": callback.last_error,
        "caller_workflow_id": execution.spec.caller.workflow_id,
        "caller_run_id": execution.spec.caller.run_id,
        "caller_activity_id": execution.spec.caller.activity_id,
        "token_hash": callback.token_hash,
    }


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


@app.command()
def callers(
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """List executions whose caller still waits, or whose callback failed (oldest first).

    Shows ids, phase, callback state, age, attempts and the last error; never the token.
    A FAILED callback of an ended execution can be sent again with `redeliver`.
    """

    async def body(channel: grpc.aio.Channel) -> list[Any]:
        stub = query_pb2_grpc.AgentExecutionQueryServiceStub(channel)
        found: list[Any] = []
        token = ""
        while True:
            page = await stub.ListAgentExecutions(
                query_pb2.ListAgentExecutionsRequest(
                    callback_states=[
                        status_pb2.CALLBACK_STATE_WAITING,
                        status_pb2.CALLBACK_STATE_FAILED,
                    ],
                    page_size=500,
                    page_token=token,
                ),
                metadata=_metadata(),
            )
            found.extend(page.executions)
            token = page.next_page_token
            if not token:
                return found

    now = datetime.datetime.now(datetime.UTC)
    rows = sorted(
        (_caller_row(e, now) for e in _call(endpoint, body)),
        key=lambda row: -float(row["age_seconds"]),
    )
    if output == Output.json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no caller is waiting and no callback has failed")
        return
    typer.echo(
        f"{'EXECUTION':<24} {'PHASE':<9} {'CALLBACK':<8} {'AGE':>6} {'TRIES':>5}  "
        "CALLER WORKFLOW / ACTIVITY  LAST ERROR"
    )
    for row in rows:
        typer.echo(
            f"{row['execution_id']:<24} {row['phase']:<9} {row['callback_state']:<8} "
            f"{_age(row['age_seconds']):>6} {row['attempts']:>5}  "
            f"{row['caller_workflow_id'] or '-'} / {row['caller_activity_id'] or '-'}  "
            f"{row['last_error'] or ''}"
        )


@app.command()
def redeliver(
    execution_id: Annotated[str, typer.Argument(metavar="EXECUTION_ID")],
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """Send an ended execution's outcome to its waiting caller again (after a failed callback)."""

    async def body(channel: grpc.aio.Channel) -> Message:
        return await command_pb2_grpc.AgentExecutionCommandServiceStub(channel).RedeliverCallback(
            command_pb2.RedeliverCallbackRequest(id=execution_id), metadata=_metadata()
        )

    _print([_call(endpoint, body)], output, lambda e: f"redelivery scheduled\n{_execution_text(e)}")
