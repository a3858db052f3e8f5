"""The client commands of the command line (apply, get, list, watch, cancel, callers, redeliver,
approve, reject), each a few calls of `ServiceClient` against a running service."""

from __future__ import annotations

import asyncio
import enum
import json
import os
import pathlib
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import grpc
import typer
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, status_pb2

from backend.stigmer_service import cli_render, manifests
from backend.stigmer_service.cli_render import Output
from backend.stigmer_service.client import ServiceClient
from backend.stigmer_service.config import DEFAULT_LISTEN

T = TypeVar("T")

API_TOKEN_ENV_VAR = "STIGMER_API_TOKEN"


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


def _call(endpoint: str, body: Callable[[ServiceClient], Awaitable[T]]) -> T:
    """Runs `body` with a client of `endpoint`; a failed RPC is one line on stderr and exit 1."""

    async def run() -> T:
        async with ServiceClient(endpoint, os.environ.get(API_TOKEN_ENV_VAR, "")) as client:
            return await body(client)

    try:
        return asyncio.run(run())
    except grpc.aio.AioRpcError as error:
        typer.echo(f"error: {error.code().name}: {error.details()}", err=True)
        raise typer.Exit(1) from None


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

    async def body(client: ServiceClient) -> list[agent_api_pb2.Agent]:
        return [await client.apply_agent(agent) for agent in agents]

    applied = _call(endpoint, body)
    cli_render.show(applied, output, lambda a: f"agent {cli_render.agent_line(a)} applied")


def get(
    kind: Annotated[Kind, typer.Argument(help="agent or execution.")],
    resource_id: Annotated[str, typer.Argument(metavar="ID")],
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """Show one agent or execution."""
    if kind == Kind.agent:
        agent = _call(endpoint, lambda client: client.get_agent(resource_id))
        cli_render.show([agent], output, cli_render.agent_line)
    else:
        execution = _call(endpoint, lambda client: client.get_execution(resource_id))
        cli_render.show([execution], output, cli_render.execution_text)


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
    if kind == Kinds.agents:
        agents = _call(endpoint, lambda client: client.list_agents(org))
        cli_render.show_list(agents, output, cli_render.agent_line)
    else:
        executions = _call(endpoint, lambda client: client.list_executions(phases))
        cli_render.show_list(executions, output, cli_render.execution_text)


def watch(
    execution_id: Annotated[str, typer.Argument(metavar="EXECUTION_ID")],
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """Follow an execution live until it ends: its messages, each step as it is recorded
    (index, kind, tool and arguments, result or error, duration, approval), its phase.
    JSON: one object per state."""

    async def body(client: ServiceClient) -> None:
        shown = cli_render.Watched()
        async for execution in client.watch_execution(execution_id):
            if output == Output.json:
                typer.echo(json.dumps(cli_render.as_json(execution)))
                continue
            for line in shown.lines(execution):
                typer.echo(line)

    _call(endpoint, body)


def cancel(
    execution_id: Annotated[str, typer.Argument(metavar="EXECUTION_ID")],
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """Cancel a pending or running execution."""
    cancelled = _call(endpoint, lambda client: client.cancel_execution(execution_id, reason))
    cli_render.show([cancelled], output, cli_render.execution_text)


def callers(
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """List executions whose caller still waits, or whose callback failed (oldest first).

    Shows ids, phase, callback state, age, attempts and the last error; never the token.
    A FAILED callback of an ended execution can be sent again with `redeliver`.
    """
    waiting = _call(
        endpoint,
        lambda client: client.list_all_executions(
            [status_pb2.CALLBACK_STATE_WAITING, status_pb2.CALLBACK_STATE_FAILED]
        ),
    )
    cli_render.show_callers(waiting, output)


def redeliver(
    execution_id: Annotated[str, typer.Argument(metavar="EXECUTION_ID")],
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """Send an ended execution's outcome to its waiting caller again (after a failed callback)."""
    scheduled = _call(endpoint, lambda client: client.redeliver_callback(execution_id))
    cli_render.show(
        [scheduled], output, lambda e: f"redelivery scheduled\n{cli_render.execution_text(e)}"
    )


ExecutionId = Annotated[str, typer.Argument(metavar="EXECUTION_ID")]
Step = Annotated[int, typer.Argument(metavar="STEP", help="The tool call's step index.")]
Reason = Annotated[str, typer.Option(help="Why, for the record (and, rejecting, the model).")]


def _decide(
    endpoint: str, execution_id: str, step: int, approve: bool, reason: str
) -> api_pb2.AgentExecution:
    return _call(
        endpoint, lambda client: client.decide_tool_call(execution_id, step, approve, reason)
    )


def approve(
    execution_id: ExecutionId,
    step: Step,
    reason: Reason = "",
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """Approve a tool call that waits for approval: it runs and the agent continues."""
    decided = _decide(endpoint, execution_id, step, True, reason)
    cli_render.show([decided], output, cli_render.execution_text)


def reject(
    execution_id: ExecutionId,
    step: Step,
    reason: Reason = "",
    endpoint: Endpoint = DEFAULT_LISTEN,
    output: OutputOption = Output.text,
) -> None:
    """Reject a tool call that waits for approval: it does not run; the model hears why."""
    decided = _decide(endpoint, execution_id, step, False, reason)
    cli_render.show([decided], output, cli_render.execution_text)


def register(app: typer.Typer) -> None:
    """Adds the client commands to `app`, in the order its help lists them."""
    app.command()(apply)
    app.command()(get)
    app.command("list")(list_)
    app.command()(watch)
    app.command()(cancel)
    app.command()(callers)
    app.command()(redeliver)
    app.command()(approve)
    app.command()(reject)
