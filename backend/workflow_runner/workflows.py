"""DslWorkflow: runs one Serverless Workflow document, carried in its input, deterministically."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TemporalError,
    TimeoutError,
)

with workflow.unsafe.imports_passed_through():
    from backend.workflow_runner import error_handling
    from backend.workflow_runner.activities import (
        CALL_HTTP_ACTIVITY,
        DEFAULT_HTTP_TIMEOUT,
        HTTP_HEARTBEAT_TIMEOUT,
        retry_policy,
    )
    from backend.workflow_runner.agent_call.models import CallAgentInput
    from backend.workflow_runner.agent_call.workflow_api import run_agent_call
    from backend.workflow_runner.dsl import errors, loader
    from backend.workflow_runner.dsl.dialects import Dialect, zigflow
    from backend.workflow_runner.dsl.errors import DslError, DslException
    from backend.workflow_runner.event_inbox import EventInbox
    from backend.workflow_runner.events import contract
    from backend.workflow_runner.interpreter import Interpreter
    from backend.workflow_runner.models import (
        ActivityCallInput,
        DslRunInput,
        HttpCallInput,
        HttpCallOutput,
        ProgressEntry,
        RunProcessInput,
        RunProcessOutput,
    )
    from backend.workflow_runner.run_tasks import (
        RUN_PROCESS_ACTIVITY,
        TIMEOUT_GRACE_SECONDS,
        heartbeat_timeout,
    )
    from backend.workflow_runner.workflow_env import READ_ENV_ACTIVITY

WORKFLOW_NAME = "DslWorkflow"
PROGRESS_QUERY = "progress"

# The event activities (publish, register, unregister) are short calls to the backbone; a
# publish keeps its event id on every attempt, so the stream deduplicates a repeated one.
EVENT_ACTIVITY_TIMEOUT = timedelta(seconds=30)
EVENT_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)


def activity_failure(error: ActivityError, path: str, title: str) -> DslError:
    """The DSL error of a failed activity: the one it reported, or one made from its cause."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        details = cause.details
        if details and isinstance(details[0], dict) and {"type", "status"} <= details[0].keys():
            reported = DslError.from_dict(details[0])
            reported.instance = reported.instance or path
            return reported
        # An agent's own failure keeps its type (ModelError, ...) so `catch` can filter on it.
        return DslError(cause.type or errors.RUNTIME, 500, title, cause.message, path)
    if isinstance(cause, TimeoutError):
        return DslError(errors.TIMEOUT, 408, title, f"activity timed out ({cause.type})", path)
    return DslError(errors.RUNTIME, 500, title, str(cause or error), path)


def _is_cancellation(error: ActivityError) -> bool:
    return isinstance(error.cause, CancelledError)


class _WorkflowRunners:
    """The interpreter's side effects as activities and timers of this workflow."""

    def __init__(self, inbox: EventInbox) -> None:
        self.inbox = inbox
        # The last stream sequence this run has seen (an emit, a registration, a consumed
        # event): a listen task's window opens after it (docs/events.md, "Delivery window").
        self.horizon: int | None = None

    def _saw(self, sequence: int) -> None:
        self.horizon = sequence if self.horizon is None else max(self.horizon, sequence)

    async def call_http(self, call: HttpCallInput) -> Any:
        try:
            result = await workflow.execute_activity(
                CALL_HTTP_ACTIVITY,
                call,
                result_type=HttpCallOutput,
                start_to_close_timeout=DEFAULT_HTTP_TIMEOUT,
                heartbeat_timeout=HTTP_HEARTBEAT_TIMEOUT,
                retry_policy=retry_policy(call),
                summary=f"{call.method} {call.uri}",
            )
        except ActivityError as error:
            if _is_cancellation(error):
                raise
            raise DslException(
                activity_failure(error, call.task_path, "HTTP call failed")
            ) from None
        return result.value

    async def call_agent(self, call: CallAgentInput) -> dict[str, Any]:
        try:
            return await run_agent_call(call)
        except ActivityError as error:
            if _is_cancellation(error):
                raise
            raise DslException(
                activity_failure(error, call.task_path, "Agent call failed")
            ) from None

    async def call_activity(self, call: ActivityCallInput) -> Any:
        attempts = call.maximum_attempts
        try:
            return await workflow.execute_activity(
                call.name,
                args=call.arguments,
                task_queue=call.task_queue,
                start_to_close_timeout=timedelta(
                    seconds=call.start_to_close_seconds or DEFAULT_HTTP_TIMEOUT.total_seconds()
                ),
                heartbeat_timeout=(
                    timedelta(seconds=call.heartbeat_seconds) if call.heartbeat_seconds else None
                ),
                retry_policy=RetryPolicy(maximum_attempts=attempts) if attempts else None,
                summary=f"activity {call.name} on {call.task_queue}",
            )
        except ActivityError as error:
            if _is_cancellation(error):
                raise
            raise DslException(
                activity_failure(error, call.task_path, "Activity call failed")
            ) from None

    async def run_process(self, call: RunProcessInput) -> Any:
        # The process has its own timeout; the activity's is a little longer, so that it ends
        # with the activity's clear error. One attempt unless the document asks for more:
        # running the document's process again is not always safe.
        try:
            result = await workflow.execute_activity(
                RUN_PROCESS_ACTIVITY,
                call,
                result_type=RunProcessOutput,
                start_to_close_timeout=timedelta(
                    seconds=call.timeout_seconds + TIMEOUT_GRACE_SECONDS
                ),
                heartbeat_timeout=timedelta(seconds=heartbeat_timeout(call)),
                retry_policy=RetryPolicy(maximum_attempts=call.maximum_attempts or 1),
                summary=f"run {call.kind} {call.command or call.language}",
            )
        except ActivityError as error:
            if _is_cancellation(error):
                raise
            raise DslException(activity_failure(error, call.task_path, "Run task failed")) from None
        return result.value

    async def wait_condition(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        try:
            await workflow.wait_condition(ready, timeout=timeout)
        except builtins.TimeoutError:
            return False
        return True

    async def sleep(self, seconds: float) -> None:
        # A durable timer: asyncio.sleep inside a workflow is turned into one by the SDK.
        await asyncio.sleep(seconds)

    def now(self) -> datetime:
        return workflow.now()

    def new_event_id(self) -> str:
        return str(workflow.uuid4())

    async def publish_event(self, event: dict[str, Any]) -> None:
        published = await self._event_activity(
            contract.PUBLISH_EVENT_ACTIVITY,
            contract.PublishEventInput(event),
            contract.PublishEventOutput,
            f"emit {event.get('type')}",
            "Event publish failed",
        )
        self._saw(published.sequence)

    async def open_listener(self, listener_id: str, types: list[str]) -> None:
        # The queue first: the router may signal as soon as the registration takes effect.
        self.inbox.open(listener_id)
        floor = replay_after = self.horizon
        # A run that has seen nothing of the stream: its horizon is the stream at its start.
        since = None if floor is not None else workflow.info().workflow_start_time.isoformat()
        while True:  # Again only while the backlog after the horizon did not fit one answer.
            registered = await self._event_activity(
                contract.REGISTER_LISTENER_ACTIVITY,
                self._registration(listener_id, types, replay_after, since),
                contract.RegisterListenerOutput,
                f"listen {listener_id} {' '.join(types) or '(every type)'}",
                "Listener registration failed",
            )
            if floor is None and registered.horizon is not None:
                floor = registered.horizon
            for delivered in registered.backlog:
                self.inbox.deliver(delivered)
            if not (registered.more and registered.backlog):
                break
            replay_after, since = registered.backlog[-1].sequence, None
        # The delivery window: events after the horizon (the run's start, for a run that has
        # seen nothing of the stream yet; its registration, against an older backbone).
        self.inbox.start_after(listener_id, registered.since_sequence if floor is None else floor)
        self._saw(registered.since_sequence)

    async def next_event(self, listener_id: str) -> dict[str, Any]:
        delivered = await self.inbox.next_delivered(listener_id)
        self._saw(delivered.sequence)
        return delivered.event

    async def close_listener(self, listener_id: str) -> None:
        self.inbox.close(listener_id)
        try:
            await self._event_activity(
                contract.UNREGISTER_LISTENER_ACTIVITY,
                self._registration(listener_id, []),
                type(None),
                f"unlisten {listener_id}",
                "Listener unregistration failed",
            )
        except DslException as failure:
            # The listen task is over either way; events still routed here are dropped.
            workflow.logger.warning("unregister_listener failed: %s", failure.error.describe())

    def _registration(
        self,
        listener_id: str,
        types: list[str],
        replay_after: int | None = None,
        replay_since: str | None = None,
    ) -> contract.ListenerRegistration:
        info = workflow.info()
        return contract.ListenerRegistration(
            info.workflow_id, listener_id, types, info.namespace, replay_after, replay_since
        )

    async def _event_activity(
        self, name: str, argument: Any, result_type: type, summary: str, title: str
    ) -> Any:
        try:
            return await workflow.execute_activity(
                name,
                argument,
                result_type=result_type,
                start_to_close_timeout=EVENT_ACTIVITY_TIMEOUT,
                retry_policy=EVENT_RETRY_POLICY,
                summary=summary,
            )
        except ActivityError as error:
            if _is_cancellation(error):
                raise
            raise DslException(activity_failure(error, "", title)) from None


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
            try:
                document = zigflow.select(zigflow.normalized(document), run_input.workflow_type)
            except KeyError as unknown:
                raise _failed(
                    DslError(
                        errors.CONFIGURATION, 400, "Unknown workflow type", unknown.args[0], "/"
                    )
                ) from None
            workflows = zigflow.workflow_bodies(zigflow.normalized(run_input.document))
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
            _WorkflowRunners(self._inbox),
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
        try:
            return await interpreter.run(run_input.input)
        except DslException as failure:
            raise _failed(failure.error) from None

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
