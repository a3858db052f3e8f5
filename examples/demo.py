"""The one-command demo: the whole system on this machine, an example workflow run end to end."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import json
import logging
import pathlib
import re
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

import grpc
import typer
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2

from backend.common import temporal_dev_server
from backend.stigmer_service import logs, manifests
from backend.workflow_runner.dsl import loader
from examples import approvals, console, reviews, stack, state, walkthrough

EXAMPLES_DIR = pathlib.Path(__file__).resolve().parent
DEFAULT_WORKFLOW = EXAMPLES_DIR / "workflows" / "support-triage.yaml"
DEFAULT_AGENTS = EXAMPLES_DIR / "agents.yaml"
INTERRUPTED_EXIT_CODE = 130
_TASK_TOKEN = re.compile(r"TaskToken\([^)]*\)")

app = typer.Typer(
    name="demo",
    help="Starts Temporal, the Stigmer service and the workflow worker, and runs an example.",
    add_completion=False,
)


class Mode(enum.StrEnum):
    run = "run"
    dev = "dev"


class DemoError(Exception):
    """A failure to report in one line (no traceback)."""


def example_path(path: pathlib.Path) -> pathlib.Path:
    """The repo's copy of a packaged example file when run from the repo root, else the file."""
    with contextlib.suppress(ValueError):
        in_repo = pathlib.Path.cwd() / "examples" / path.resolve().relative_to(EXAMPLES_DIR)
        if in_repo.is_file():
            return in_repo
    return path


def read_input(value: str | None, workflow: pathlib.Path) -> tuple[Any, str]:
    """The workflow input and where it came from: --input, else <workflow>.input.json, else {}."""
    if value is None:
        sample = workflow.with_name(workflow.name.split(".")[0] + ".input.json")
        if not sample.is_file():
            return {}, "no input"
        value = f"@{sample}"
    text, origin = value, "--input"
    if value.startswith("@"):
        path = pathlib.Path(value[1:])
        try:
            text, origin = path.read_text(encoding="utf-8"), console.shown(path)
        except OSError as error:
            raise DemoError(f"--input: cannot read {path}: {error.strerror}") from None
    try:
        return json.loads(text), origin
    except json.JSONDecodeError as error:
        raise DemoError(f"--input: not valid JSON ({origin}): {error}") from None


def load_workflow(path: pathlib.Path, workflow_input: Any) -> dict[str, Any]:
    try:
        document = loader.load_file(path)
    except loader.InvalidDocumentError as invalid:
        found = "; ".join(str(p) for p in invalid.problems)
        raise DemoError(f"{console.shown(path)} is not a valid workflow: {found}") from None
    if problems := loader.validate_input(document, workflow_input):
        raise DemoError("the input does not fit the workflow: " + "; ".join(map(str, problems)))
    return document


class _RedactTaskTokens(logging.Filter):
    """The SDK core logs raw task tokens in some warnings; a token completes an activity."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "TaskToken(" in message:
            record.msg, record.args = _TASK_TOKEN.sub("TaskToken(<redacted>)", message), None
        return True


@contextlib.contextmanager
def logging_to(path: pathlib.Path) -> Iterator[None]:
    """Every component's logs (structlog, Temporal SDK, warnings) go to the file, not the terminal."""
    with path.open("a", encoding="utf-8", buffering=1) as stream:
        logs.configure(stream=stream)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_RedactTaskTokens())
        logging.captureWarnings(True)
        # Coroutines of workflows evicted at shutdown can be collected late, even at interpreter
        # exit, and Python prints their GeneratorExit on stderr: it belongs in the log too. The
        # hook stays installed after this block, since that collection may happen later still.
        sys.unraisablehook = functools.partial(_unraisable_to_file, path)
        try:
            yield
        finally:
            logging.getLogger().handlers.clear()


def _unraisable_to_file(path: pathlib.Path, unraisable: Any) -> None:
    text = "".join(
        traceback.format_exception(
            unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback
        )
    )
    with contextlib.suppress(OSError), path.open("a", encoding="utf-8") as stream:
        stream.write(f"{unraisable.err_msg or 'Exception ignored in'}: {unraisable.object!r}\n")
        stream.write(_TASK_TOKEN.sub("TaskToken(<redacted>)", text))


class Demo:
    """One run of the demo; `main` wraps it with signal handling."""

    def __init__(
        self,
        mode: Mode,
        state_dir: pathlib.Path,
        workflow: pathlib.Path,
        workflow_input: Any,
        input_origin: str,
        agents_file: pathlib.Path,
        model: str | None,
        keep: bool,
    ) -> None:
        self.mode = mode
        self.state_dir = state_dir
        self.workflow = workflow
        self.workflow_input = workflow_input
        self.input_origin = input_origin
        self.agents_file = agents_file
        self.model = model
        self.keep = keep
        # Set while the demo only waits for Ctrl-C, which then is the normal way to end it.
        self.waiting_for_ctrl_c = False

    async def run(self) -> int:
        document = load_workflow(self.workflow, self.workflow_input)
        if self.mode == Mode.dev:
            config = stack.dev_config(self.state_dir)
        else:
            config = stack.StackConfig(self.state_dir)
        async with stack.running(config, console.say) as running:
            agents = await walkthrough.apply_agents(
                running.service.address, self.agents_file, self.model
            )
            console.print_agents(agents, self.agents_file)
            if self.mode == Mode.dev:
                sample = None if self.input_origin in ("no input", "--input") else self.input_origin
                workflow_arg = console.shown(example_path(self.workflow))
                console.print_dev_commands(running, workflow_arg, sample)
                # The user runs workflows: each tool call that waits is shown with its command.
                address = running.service.address
                await self.wait_for_ctrl_c(
                    approvals.watch(address, None, console.print_dev_approval)
                )
                return 0
            exit_code = await self.run_example(running, document, agents)
            if self.keep:
                console.say(
                    f"\nThe stack stays up (--keep): browse {running.ui_url}. Ctrl-C to stop."
                )
                await self.wait_for_ctrl_c()
            return exit_code

    async def wait_for_ctrl_c(self, meanwhile: Awaitable[None] | None = None) -> None:
        self.waiting_for_ctrl_c = True
        await (meanwhile or asyncio.Event().wait())

    async def run_example(
        self, running: stack.Stack, document: dict[str, Any], agents: list[agent_api_pb2.Agent]
    ) -> int:
        name = document["document"]["name"]
        console.say()
        console.say(
            f"Running workflow {name} ({console.shown(self.workflow)}) with input from {self.input_origin}"
        )

        def started(workflow_id: str, run_id: str) -> None:
            console.say(f"  workflow id {workflow_id}, run id {run_id}")

        async def approve(workflow_id: str) -> None:
            # A tool call that waits for a person is approved with the CLI, as a user would.
            await approvals.watch(
                running.service.address, workflow_id, console.print_waiting, console.print_decided
            )

        result = await walkthrough.run_workflow(
            running.client,
            running.task_queue,
            document,
            self.workflow_input,
            console.print_progress,
            on_started=started,
            alongside=approve,
        )
        console.say()
        if result.error is None:
            console.say("Output:")
            console.say(json.dumps(result.output, indent=2, ensure_ascii=False))
        else:
            console.say(f"The workflow failed: {result.error.describe()}")
        console.say()
        await console.print_executions(running, result.workflow_id, agents)
        reviewed = result.error is None and await reviews.run_reviews(
            running, result.output["ticket"], result.output["reply"]
        )
        console.say()
        url = f"{running.ui_url}/namespaces/default/workflows/{result.workflow_id}/{result.run_id}"
        console.say("Where to look:")
        console.say(f"  Temporal UI   {url}/history")
        if not self.keep:
            console.say(
                "                (served while the demo runs: add --keep to browse it afterwards)"
            )
        console.say(f"  workflow id   {result.workflow_id}")
        console.say(f"  run id        {result.run_id}")
        console.say(f"  logs          {self.state_dir / 'demo.log'} (service, worker)")
        console.say(f"                {self.state_dir / 'temporal.log'} (Temporal dev server)")
        console.say(f"  state         {self.state_dir} (temporal.db, stigmer.db, nats/)")
        return 0 if result.error is None and reviewed else 1


async def supervise(work: Callable[[], Awaitable[int]], demo: Demo) -> int:
    """Runs `work`; SIGINT/SIGTERM cancel it, which stops the stack in order, once."""
    task = asyncio.ensure_future(work())
    loop = asyncio.get_running_loop()
    signals: list[int] = []

    def on_signal(signum: int) -> None:
        signals.append(signum)
        if len(signals) == 1:
            if not demo.waiting_for_ctrl_c:
                console.say(f"\n{signal.Signals(signum).name}: stopping ...")
            task.cancel()
        else:
            console.say("Still stopping (the Temporal dev server gets at most 10 s) ...")

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await task
    except asyncio.CancelledError:
        if demo.waiting_for_ctrl_c:
            return 0
        console.say(
            "Interrupted: the workflow stays in Temporal's state and resumes on the next start."
        )
        return INTERRUPTED_EXIT_CODE
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def describe_failure(error: BaseException) -> str | None:
    """One line for the failures a user can act on; None for bugs (shown with the log file)."""
    if isinstance(
        error,
        DemoError
        | state.StateDirBusyError
        | state.PortTakenError
        | approvals.ApprovalError
        | reviews.ReviewError,
    ):
        return str(error)
    if isinstance(
        error,
        temporal_dev_server.TemporalCliNotFoundError | temporal_dev_server.DevServerStartError,
    ):
        return str(error)
    if isinstance(error, manifests.ManifestError | OSError):
        return str(error)
    if isinstance(error, grpc.aio.AioRpcError):
        return f"the Stigmer service answered {error.code().name}: {error.details()}"
    return None


@app.command()
def main(
    mode: Annotated[
        Mode,
        typer.Argument(
            help="run: start everything, run the example once, stop. dev: start everything on the "
            "default ports (Temporal 7233, UI 8233, service 50051) and stay up until Ctrl-C."
        ),
    ] = Mode.run,
    state_dir: Annotated[
        pathlib.Path,
        typer.Option(help="Where the SQLite files, the logs and the pid files go."),
    ] = state.DEFAULT_STATE_DIR,
    workflow: Annotated[
        pathlib.Path | None,
        typer.Option(help="The workflow to run [default: examples/workflows/support-triage.yaml]."),
    ] = None,
    input_: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="The workflow input: JSON, or @FILE [default: <workflow>.input.json next to it].",
        ),
    ] = None,
    agents: Annotated[
        pathlib.Path | None,
        typer.Option(help="The agent manifests to apply [default: examples/agents.yaml]."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Run every agent on this model instead, e.g. openai/gpt-4o-mini (with "
            "OPENAI_API_KEY and, for other endpoints, OPENAI_BASE_URL set)."
        ),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="After the run, keep everything up until Ctrl-C.")
    ] = False,
) -> None:
    """Run the whole system on this machine and an example workflow through it."""
    state_dir = state_dir.expanduser().resolve()
    workflow = workflow or example_path(DEFAULT_WORKFLOW)
    agents_file = agents or example_path(DEFAULT_AGENTS)
    try:
        workflow_input, origin = read_input(input_, workflow)
        notes = state.claim(state_dir)
    except (DemoError, state.StateDirBusyError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    console.say(f"Stigmer demo ({mode.value}); state and logs in {state_dir}")
    for note in notes:
        console.say(f"  ({note})")
    demo = Demo(mode, state_dir, workflow, workflow_input, origin, agents_file, model, keep)
    exit_code = 1
    try:
        with logging_to(state_dir / "demo.log"):
            try:
                exit_code = asyncio.run(supervise(demo.run, demo))
            except Exception as error:  # - reported in one line, details in the log
                logging.getLogger("examples.demo").exception("the demo failed")
                message = describe_failure(error)
                if message is None:
                    message = (
                        f"{type(error).__name__}: {error} (details in {state_dir / 'demo.log'})"
                    )
                typer.echo(f"error: {message}", err=True)
                exit_code = 1
    finally:
        state.release(state_dir)
    console.say(
        "Stopped everything." if exit_code != 1 else "Stopped everything (after a failure)."
    )
    raise typer.Exit(exit_code)


if __name__ == "__main__":
    sys.exit(app())
