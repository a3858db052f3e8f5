"""DslWorkflow: runs one Serverless Workflow document, carried in its input, deterministically."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import (
    ApplicationError,
    TemporalError,
)

with workflow.unsafe.imports_passed_through():
    from backend.workflow_runner import error_handling
    from backend.workflow_runner.dsl import errors, loader
    from backend.workflow_runner.dsl.dialects import Dialect, zigflow
    from backend.workflow_runner.dsl.errors import DslError, DslException
    from backend.workflow_runner.event_inbox import EventInbox
    from backend.workflow_runner.events import contract
    from backend.workflow_runner.interpreter import Interpreter
    from backend.workflow_runner.models import (
        DslRunInput,
        ProgressEntry,
    )
    from backend.workflow_runner.workflow_env import READ_ENV_ACTIVITY
    from backend.workflow_runner.workflow_runners import WorkflowRunners
    from backend.workflow_runner.zigflow_runtime import ContinueAsNew

WORKFLOW_NAME = "DslWorkflow"
PROGRESS_QUERY = "progress"


def _first_argument(args: Sequence[RawValue]) -> Any:
    if not args:
        return None
    return workflow.payload_converter().from_payload(args[0].payload)


def _failed(error: DslError) -> ApplicationError:
    return ApplicationError(error.describe(), error.to_dict(), type=error.type, non_retryable=True)


# What still escapes `run` despite its conversions fails the workflow instead of failing the
# workflow task, which Temporal would retry forever (TemporalError, e.g. NondeterminismError,
# keeps its retries: a fixed worker may resume the run).
FAILURE_EXCEPTION_TYPES: list[type[BaseException]] = [
    ArithmeticError,
    AttributeError,
    LookupError,
    RecursionError,
    TypeError,
    ValueError,
]


@workflow.defn(name=WORKFLOW_NAME, failure_exception_types=FAILURE_EXCEPTION_TYPES)
class DslWorkflow:
    """Validates the document again (it may come from any client), then interprets it. Every
    error ends the run as a DSL error: a document's own failures as they are, anything
    unexpected as a `runtime` error (the interpreter names the task)."""

    @workflow.init
    def __init__(self, run_input: DslRunInput) -> None:
        self._progress: list[ProgressEntry] = []
        self._inbox = EventInbox(workflow.wait_condition)
        self._interpreter: Interpreter | None = None
        self._early_signals: list[tuple[str, Any]] = []
        self._update_names: frozenset[str] = frozenset()
        if run_input.dialect == Dialect.ZIGFLOW.value:
            self._update_names = zigflow.update_names(run_input.document)

    @workflow.run
    async def run(self, run_input: DslRunInput) -> Any:
        try:
            problems = loader.validate(run_input.document, run_input.dialect)
        except Exception as unexpected:  # A document shape the validator did not foresee.
            raise _failed(error_handling.unexpected_error(unexpected, "/").error) from unexpected
        if problems:
            details = "; ".join(str(problem) for problem in problems)
            raise _failed(
                DslError(errors.CONFIGURATION, 400, "Invalid workflow document", details, "/")
            )
        dialect = Dialect(run_input.dialect)
        document, workflows = run_input.document, {}
        if dialect is Dialect.ZIGFLOW:
            whole = zigflow.normalized(document)
            workflows = zigflow.workflow_bodies(whole)
            try:
                document = zigflow.select(whole, run_input.workflow_type)
            except KeyError as unknown:
                raise _failed(
                    DslError(
                        errors.CONFIGURATION, 400, "Unknown workflow type", unknown.args[0], "/"
                    )
                ) from None
        info = workflow.info()
        facts = {
            "workflow_execution_id": info.workflow_id,
            "workflow_execution_run_id": info.run_id,
            "workflow_type_name": document.get("document", {}).get("workflowType")
            or info.workflow_type,
            "task_queue_name": info.task_queue,
            "namespace": info.namespace,
            "attempt": info.attempt,
            "workflow_start_time": info.start_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        env: dict[str, str] = {}
        if dialect is Dialect.ZIGFLOW and "$env" in str(run_input.document):
            env = await workflow.execute_local_activity(
                READ_ENV_ACTIVITY, result_type=dict, start_to_close_timeout=timedelta(seconds=10)
            )
        interpreter = Interpreter(
            document,
            WorkflowRunners(self._inbox),
            info.workflow_id,
            passthrough=(TemporalError,),
            dialect=dialect,
            workflow_facts=facts,
            env=env,
            workflows=workflows,
        )
        self._interpreter = interpreter
        if interpreter.zigflow is not None:
            for name, payload in self._early_signals:
                interpreter.zigflow.on_signal(name, payload)
        self._early_signals.clear()
        self._progress = interpreter.progress
        if interpreter.zigflow is not None:
            interpreter.zigflow.resume = run_input.resume
        try:
            return await interpreter.run(run_input.input)
        except DslException as failure:
            raise _failed(failure.error) from None
        except ContinueAsNew as point:
            # Handlers (updates) finish first, as Zigflow waits for them.
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(dataclasses.replace(run_input, resume=point.state))

    @workflow.signal(name=contract.EVENT_SIGNAL)
    def deliver_event(self, delivered: contract.DeliveredEvent) -> None:
        """An event for one of this run's listeners (from the event router)."""
        self._inbox.deliver(delivered)

    # Zigflow's listen tasks on Temporal messages (zigflow_runtime.py): any other name.

    @workflow.signal(dynamic=True)
    def on_signal(self, name: str, args: Sequence[RawValue]) -> None:
        run = self._interpreter.zigflow if self._interpreter else None
        payload = _first_argument(args)
        if run is None:
            if self._interpreter is None and len(self._early_signals) < 100:
                self._early_signals.append((name, payload))  # Before run() started.
            return
        if not run.on_signal(name, payload):
            workflow.logger.warning("signal %r dropped: too many signals waiting", name)

    @workflow.query(dynamic=True)
    def on_query(self, name: str, args: Sequence[RawValue]) -> Any:
        run = self._interpreter.zigflow if self._interpreter else None
        if run is None or name not in run.queries:
            raise ApplicationError(f"no listener for query {name!r} (yet)", type="QueryNotFound")
        return run.on_query(name)

    @workflow.update(dynamic=True)
    async def on_update(self, name: str, args: Sequence[RawValue]) -> Any:
        # An update may come before its listen task has started (even before the run has):
        # it waits for it, as Zigflow's handler is there from the start.
        await workflow.wait_condition(
            lambda: self._interpreter is not None
            and self._interpreter.zigflow is not None
            and name in self._interpreter.zigflow.updates
        )
        run = self._interpreter.zigflow if self._interpreter else None
        assert run is not None
        try:
            return run.on_update(name, _first_argument(args))
        except DslException as failure:
            raise ApplicationError(failure.error.describe(), type=failure.error.type) from None

    @on_update.validator
    def check_update(self, name: str, args: Sequence[RawValue]) -> None:
        # Refused at once when the document has no listen task for it.
        if name not in self._update_names:
            raise ApplicationError(f"no listener for update {name!r}", type="UpdateNotFound")

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> list[ProgressEntry]:
        """The tasks that finished so far, in order."""
        return list(self._progress)
