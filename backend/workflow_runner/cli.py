"""Command line of the workflow runner: the worker, and commands to run and validate workflows."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import uuid
from datetime import timedelta
from typing import Annotated, Any

import typer
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from backend.common import logs, tracing
from backend.workflow_runner import migrate_cli, schedule_cli
from backend.workflow_runner import worker as worker_module
from backend.workflow_runner.claim_check import config as claim_check
from backend.workflow_runner.claim_check.errors import ClaimCheckConfigError
from backend.workflow_runner.dsl import dialects, durations, loader
from backend.workflow_runner.dsl.dialects import zigflow
from backend.workflow_runner.dsl.errors import DslError
from backend.workflow_runner.events import cli as events_cli
from backend.workflow_runner.models import DslRunInput, ProgressEntry
from backend.workflow_runner.workflows import PROGRESS_QUERY, WORKFLOW_NAME

PROGRESS_POLL_SECONDS = 0.5

app = typer.Typer(
    name="workflow-runner",
    help="Runs Serverless Workflow DSL documents durably on Temporal.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(schedule_cli.app)

TaskQueueOption = Annotated[
    str, typer.Option("--task-queue", help="The Temporal task queue of the DSL worker.")
]


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


@app.callback()
def _root() -> None:
    # A callback keeps typer in multi-command mode whatever the number of commands.
    pass


@app.command()
def version() -> None:
    """Print the version of this build."""
    typer.echo("workflow-runner 0.1.0")


@app.command()
def worker(
    task_queue: TaskQueueOption = worker_module.TASK_QUEUE,
    max_concurrent_activities: Annotated[
        int, typer.Option(help="Activity slots; waiting agent calls do not hold one.")
    ] = worker_module.DEFAULT_MAX_CONCURRENT_ACTIVITIES,
    metrics_listen: Annotated[
        str,
        typer.Option(
            envvar="WORKFLOW_RUNNER_METRICS_LISTEN",
            help="HOST:PORT of the Prometheus /metrics endpoint (off when empty).",
        ),
    ] = "",
    temporal_metrics_listen: Annotated[
        str,
        typer.Option(
            envvar="WORKFLOW_RUNNER_TEMPORAL_METRICS_LISTEN",
            help="HOST:PORT of Temporal's SDK metrics endpoint (off when empty).",
        ),
    ] = "",
) -> None:
    """Run the DSL engine's worker until SIGTERM or SIGINT.

    Env: TEMPORAL_ADDRESS (127.0.0.1:7233), TEMPORAL_NAMESPACE (default),
    STIGMER_ENDPOINT (127.0.0.1:50051). Logs are JSON lines when stderr is not a terminal;
    tracing follows the OTEL_* variables (off by default).
    """
    logs.configure()
    tracing.configure("workflow-runner")
    try:
        asyncio.run(
            worker_module.run_worker(
                _env("TEMPORAL_ADDRESS", worker_module.DEFAULT_TEMPORAL_ADDRESS),
                _env("TEMPORAL_NAMESPACE", worker_module.DEFAULT_TEMPORAL_NAMESPACE),
                task_queue,
                max_concurrent_activities,
                _env("STIGMER_ENDPOINT", worker_module.DEFAULT_STIGMER_ENDPOINT),
                metrics_listen=metrics_listen,
                temporal_metrics_listen=temporal_metrics_listen,
            )
        )
    except ClaimCheckConfigError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    finally:
        tracing.shutdown()


events_cli.register(app, _env)
migrate_cli.register(app)


DialectOption = Annotated[
    str,
    typer.Option(
        help="How to read the document: standard (DSL 1.0), zigflow (the original system's "
        "dialect) or auto (zigflow when the document block has taskQueue, workflowType or "
        "description).",
    ),
]


@app.command()
def validate(
    file: Annotated[pathlib.Path, typer.Argument(help="A workflow document, YAML or JSON.")],
    dialect: DialectOption = dialects.AUTO,
) -> None:
    """Check a workflow document; print every problem with its path (exit 1 when any)."""
    try:
        document = loader.load_file(file, dialect)
    except loader.InvalidDocumentError as invalid:
        for problem in invalid.problems:
            typer.echo(f"{file}: {problem}", err=True)
        typer.echo(f"{len(invalid.problems)} problem(s) found", err=True)
        raise typer.Exit(1) from None
    chosen = dialects.resolve(document, dialect)
    typer.echo(
        f"{file}: valid" + (" (zigflow dialect)" if chosen is dialects.Dialect.ZIGFLOW else "")
    )


@app.command()
def run(
    file: Annotated[pathlib.Path, typer.Argument(help="A workflow document, YAML or JSON.")],
    input_: Annotated[
        str | None,
        typer.Option("--input", help="The workflow input: JSON, or @FILE to read it from a file."),
    ] = None,
    workflow_id: Annotated[
        str | None, typer.Option("--id", help="The workflow id (default: NAME-<uuid>).")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Start the workflow and print its ids only.")
    ] = False,
    task_queue: TaskQueueOption = worker_module.TASK_QUEUE,
    dialect: DialectOption = dialects.AUTO,
    workflow_type: Annotated[
        str | None,
        typer.Option(
            help="Zigflow: which workflow of a file that defines several to run (default: the "
            "first)."
        ),
    ] = None,
    execution_timeout: Annotated[
        str | None,
        typer.Option(
            help="Temporal ends the run after this ISO 8601 duration (e.g. P7D), whatever it is "
            "waiting for (default: none; a document's own timeout.after ends it as a DSL error)."
        ),
    ] = None,
) -> None:
    """Validate FILE, run it, show progress on stderr and print the output as JSON on stdout.

    Exits 1 with the DSL error when the document is invalid or the workflow fails.
    Env: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE.
    """
    try:
        document = loader.load_file(file, dialect)
    except loader.InvalidDocumentError as invalid:
        for problem in invalid.problems:
            typer.echo(f"{file}: {problem}", err=True)
        raise typer.Exit(1) from None
    chosen = dialects.resolve(document, dialect)
    name, selected = document["document"].get("name"), document
    if chosen is dialects.Dialect.ZIGFLOW:
        try:
            # The whole file travels (its workflows can run one another); the worker selects.
            selected = zigflow.select(zigflow.normalized(document), workflow_type)
        except KeyError as unknown:
            typer.echo(f"--workflow-type: {unknown.args[0]}", err=True)
            raise typer.Exit(1) from None
        name = workflow_type = selected["document"]["workflowType"]
    elif workflow_type is not None:
        typer.echo("--workflow-type: only a Zigflow document defines workflow types", err=True)
        raise typer.Exit(1)
    workflow_input = _read_input(input_)
    problems = loader.validate_input(selected, workflow_input)
    if problems:
        for problem in problems:
            typer.echo(f"input: {problem}", err=True)
        raise typer.Exit(1)
    workflow_id = workflow_id or f"{name}-{uuid.uuid4()}"
    limit = _duration("--execution-timeout", execution_timeout)
    try:
        exit_code = asyncio.run(
            _run(
                DslRunInput(document, workflow_input, chosen.value, workflow_type),
                workflow_id,
                task_queue,
                wait=not no_wait,
                execution_timeout=limit,
            )
        )
    except ClaimCheckConfigError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    finally:
        tracing.shutdown()
    raise typer.Exit(exit_code)


def _duration(option: str, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        seconds = durations.to_seconds(value)
    except durations.DurationError as error:
        typer.echo(f"{option}: {error}", err=True)
        raise typer.Exit(1) from None
    if seconds <= 0:
        typer.echo(f"{option}: must be longer than zero", err=True)
        raise typer.Exit(1)
    return timedelta(seconds=seconds)


def _read_input(value: str | None) -> Any:
    if value is None:
        return {}
    text = value
    if value.startswith("@"):
        try:
            text = pathlib.Path(value[1:]).read_text(encoding="utf-8")
        except OSError as error:
            typer.echo(f"--input: cannot read {value[1:]}: {error}", err=True)
            raise typer.Exit(1) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        typer.echo(f"--input: not valid JSON: {error}", err=True)
        raise typer.Exit(1) from None


async def _run(
    run_input: DslRunInput,
    workflow_id: str,
    task_queue: str,
    wait: bool,
    execution_timeout: timedelta | None = None,
) -> int:
    # With tracing on, the trace starts here (StartWorkflow) and follows the run to the agents.
    tracing.configure("workflow-runner")
    client = await Client.connect(
        _env("TEMPORAL_ADDRESS", worker_module.DEFAULT_TEMPORAL_ADDRESS),
        namespace=_env("TEMPORAL_NAMESPACE", worker_module.DEFAULT_TEMPORAL_NAMESPACE),
        # The worker's codec: a large input is offloaded, a large output restored.
        data_converter=claim_check.data_converter(),
        interceptors=tracing.temporal_interceptors(),
    )
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        WORKFLOW_NAME,
        run_input,
        id=workflow_id,
        task_queue=task_queue,
        execution_timeout=execution_timeout,
    )
    if not wait:
        typer.echo(json.dumps({"workflow_id": handle.id, "run_id": handle.result_run_id}))
        return 0
    typer.echo(f"started {handle.id}", err=True)
    result = asyncio.create_task(handle.result())
    shown = 0
    while True:
        done, _ = await asyncio.wait({result}, timeout=PROGRESS_POLL_SECONDS)
        shown = await _show_progress(handle, shown)
        if done:
            break
    try:
        output = result.result()
    except WorkflowFailureError as failure:
        error = DslError.from_failure(failure)
        typer.echo(f"workflow {handle.id} failed: {error.describe()}", err=True)
        typer.echo(json.dumps({"error": error.to_dict()}), err=True)
        return 1
    typer.echo(json.dumps(output))
    return 0


async def _show_progress(handle: WorkflowHandle[Any, Any], shown: int) -> int:
    try:
        entries = await handle.query(PROGRESS_QUERY, result_type=list[ProgressEntry])
    except Exception:  # A missed poll only delays the progress lines.
        return shown
    for entry in entries[shown:]:
        suffix = f" ({entry.error_type})" if entry.error_type else ""
        typer.echo(f"  {entry.status:<9} {entry.path}{suffix}", err=True)
    return max(shown, len(entries))
