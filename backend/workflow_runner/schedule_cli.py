"""`workflow-runner schedule apply|list|delete`: a document's `schedule` as a Temporal Schedule
(`every`, `cron`, `after`) or as an event-driven start registration (`on`).

The schedule id is `dsl:<namespace>:<name>:<version>` of the document, so applying the same
document again updates its schedule. Overlap policies: `every` ALLOW_ALL (the specification:
"regardless of whether the previous run is still in progress"); `cron` SKIP (a tick while a run
is still going starts nothing); `after` SKIP on an interval of the delay (see `_spec`).
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
from datetime import timedelta
from typing import Annotated, Any

import typer
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from backend.workflow_runner import worker as worker_module
from backend.workflow_runner import zigflow_schedule
from backend.workflow_runner.claim_check import config as claim_check
from backend.workflow_runner.dsl import dialects, durations, loader
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.workflows import WORKFLOW_NAME

ID_PREFIX = "dsl:"

app = typer.Typer(
    name="schedule",
    help="Schedules of workflow documents (their `schedule`): apply, list, delete.",
    no_args_is_help=True,
    add_completion=False,
)


def schedule_id(document: dict[str, Any]) -> str:
    header = document["document"]
    return f"{ID_PREFIX}{header['namespace']}:{header['name']}:{header['version']}"


def _spec(schedule: dict[str, Any]) -> tuple[ScheduleSpec, ScheduleOverlapPolicy]:
    if "cron" in schedule:
        return ScheduleSpec(cron_expressions=[schedule["cron"]]), ScheduleOverlapPolicy.SKIP
    if "every" in schedule:
        every = timedelta(seconds=durations.to_seconds(schedule["every"]))
        return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]), (
            ScheduleOverlapPolicy.ALLOW_ALL
        )
    # `after`: a Temporal Schedule cannot wait for a run's end; an interval of the delay with
    # SKIP starts the first run one delay after apply and never two at once, and the next run
    # starts at the first tick after a run ended (at most one delay later, not exactly one).
    after = timedelta(seconds=durations.to_seconds(schedule["after"]))
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=after)]), ScheduleOverlapPolicy.SKIP


def temporal_schedule(document: dict[str, Any], workflow_input: Any, task_queue: str) -> Schedule:
    spec, overlap = _spec(document["schedule"])
    action = ScheduleActionStartWorkflow(
        WORKFLOW_NAME,
        DslRunInput(document, workflow_input),
        # Temporal appends the scheduled time to this id for each run.
        id=schedule_id(document),
        task_queue=task_queue,
    )
    return Schedule(action=action, spec=spec, policy=SchedulePolicy(overlap=overlap))


async def _connect() -> Client:
    return await Client.connect(
        os.environ.get("TEMPORAL_ADDRESS") or worker_module.DEFAULT_TEMPORAL_ADDRESS,
        namespace=os.environ.get("TEMPORAL_NAMESPACE") or worker_module.DEFAULT_TEMPORAL_NAMESPACE,
        # A schedule's action holds the workflow input, which can be large.
        data_converter=claim_check.data_converter(),
    )


async def _apply(ident: str, schedule: Schedule) -> str:
    client = await _connect()
    try:
        await client.create_schedule(ident, schedule)
        return "created"
    except ScheduleAlreadyRunningError:  # Applied before: this document replaces it.
        pass

    def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(ident).update(update)
    return "updated"


async def _apply_on(document: dict[str, Any], task_queue: str) -> None:
    """`schedule.on`: a start registration the event router follows (NATS_URL required)."""
    from backend.workflow_runner.dsl import events
    from backend.workflow_runner.events import broker, registrations
    from backend.workflow_runner.events.contract import StartRegistration

    settings = broker.BrokerSettings.required()
    connection = await broker.connect(settings, name="workflow-runner-schedule")
    try:
        registration = StartRegistration(
            schedule_id=schedule_id(document),
            types=events.routing_types(document["schedule"]["on"]),
            document=document,
            task_queue=task_queue,
            namespace=os.environ.get("TEMPORAL_NAMESPACE")
            or worker_module.DEFAULT_TEMPORAL_NAMESPACE,
        )
        await registrations.put_start(connection.registrations, registration)
    finally:
        await connection.close()


@app.command()
def apply(
    file: Annotated[pathlib.Path, typer.Argument(help="A workflow document with a `schedule`.")],
    input_: Annotated[
        str, typer.Option("--input", help="The input of every scheduled run (JSON).")
    ] = "{}",
    task_queue: Annotated[
        str, typer.Option("--task-queue", help="The Temporal task queue of the DSL worker.")
    ] = worker_module.TASK_QUEUE,
) -> None:
    """Create or update FILE's schedule; print its id. Exit 1 when FILE is invalid or has none.

    Env: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE; NATS_URL for `schedule.on`.
    """
    try:
        document = loader.load_file(file)
    except loader.InvalidDocumentError as invalid:
        for problem in invalid.problems:
            typer.echo(f"{file}: {problem}", err=True)
        raise typer.Exit(1) from None
    if "schedule" not in document:
        typer.echo(f"{file}: the document has no `schedule`", err=True)
        raise typer.Exit(1)
    try:
        workflow_input = json.loads(input_)
    except json.JSONDecodeError as error:
        typer.echo(f"--input: not valid JSON: {error}", err=True)
        raise typer.Exit(1) from None
    if dialects.detect(document) is dialects.Dialect.ZIGFLOW:
        try:
            ident = zigflow_schedule.schedule_id(document)
            schedule = zigflow_schedule.temporal_schedule(document, task_queue)
        except zigflow_schedule.ScheduleError as error:
            typer.echo(f"{file}: {error}", err=True)
            raise typer.Exit(1) from None
        result = asyncio.run(_apply(ident, schedule))
        typer.echo(json.dumps({"schedule_id": ident, "kind": "zigflow", "result": result}))
        return
    ident = schedule_id(document)
    if "on" in document["schedule"]:
        try:
            asyncio.run(_apply_on(document, task_queue))
        except Exception as error:  # No NATS_URL, or the broker refused.
            typer.echo(f"schedule {ident}: {error}", err=True)
            raise typer.Exit(1) from None
        typer.echo(json.dumps({"schedule_id": ident, "kind": "on", "result": "registered"}))
        return
    (kind,) = (key for key in ("every", "cron", "after") if key in document["schedule"])
    schedule = temporal_schedule(document, workflow_input, task_queue)
    result = asyncio.run(_apply(ident, schedule))
    typer.echo(json.dumps({"schedule_id": ident, "kind": kind, "result": result}))


async def _list() -> list[str]:
    client = await _connect()
    idents = [
        entry.id async for entry in await client.list_schedules() if entry.id.startswith(ID_PREFIX)
    ]
    return sorted(idents + await _on_schedules())


async def _on_schedules() -> list[str]:
    """The `on` schedules' ids (start registrations); none without NATS_URL."""
    from backend.workflow_runner.events import broker, registrations

    settings = broker.BrokerSettings.from_env()
    if settings is None:
        return []
    connection = await broker.connect(settings, name="workflow-runner-schedule")
    try:
        starts = await registrations.list_starts(connection.registrations)
    finally:
        await connection.close()
    return [start.schedule_id for start in starts if start.schedule_id.startswith(ID_PREFIX)]


@app.command("list")
def list_() -> None:
    """Print the id of every DSL schedule, one a line (`on` ones too when NATS_URL is set)."""
    for ident in asyncio.run(_list()):
        typer.echo(ident)


async def _delete(ident: str) -> bool:
    client = await _connect()
    try:
        await client.get_schedule_handle(ident).delete()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    else:
        return True
    return await _delete_on(ident)


async def _delete_on(ident: str) -> bool:
    """Deletes an `on` schedule's start registration; False when there is none (or no NATS_URL)."""
    from backend.workflow_runner.events import broker, registrations

    settings = broker.BrokerSettings.from_env()
    if settings is None:
        return False
    connection = await broker.connect(settings, name="workflow-runner-schedule")
    try:
        return await registrations.delete_start_if_present(connection.registrations, ident)
    finally:
        await connection.close()


@app.command()
def delete(
    schedule: Annotated[str, typer.Argument(help="A schedule id, as apply printed it.")],
) -> None:
    """Delete a schedule (an `on` one: its start registration, NATS_URL required); exit 1 when
    there is none with that id."""
    if not asyncio.run(_delete(schedule)):
        typer.echo(f"no schedule {schedule}", err=True)
        raise typer.Exit(1)
    typer.echo(f"deleted {schedule}")
