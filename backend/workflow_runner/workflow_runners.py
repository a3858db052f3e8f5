"""The interpreter's side effects inside DslWorkflow: activities, timers, event listeners."""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    TimeoutError,
)

with workflow.unsafe.imports_passed_through():
    from backend.workflow_runner import search_attributes
    from backend.workflow_runner.activities import (
        CALL_HTTP_ACTIVITY,
        DEFAULT_HTTP_TIMEOUT,
        HTTP_HEARTBEAT_TIMEOUT,
        retry_policy,
    )
    from backend.workflow_runner.agent_call.models import CallAgentInput
    from backend.workflow_runner.agent_call.workflow_api import run_agent_call
    from backend.workflow_runner.dsl import errors
    from backend.workflow_runner.dsl.errors import DslError, DslException
    from backend.workflow_runner.event_inbox import EventInbox
    from backend.workflow_runner.events import contract
    from backend.workflow_runner.models import (
        ActivityCallInput,
        HttpCallInput,
        HttpCallOutput,
        RunProcessInput,
        RunProcessOutput,
    )
    from backend.workflow_runner.run_tasks import (
        RUN_PROCESS_ACTIVITY,
        TIMEOUT_GRACE_SECONDS,
        heartbeat_timeout,
    )


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


def scheduling(
    options: dict[str, Any],
    *,
    start_to_close: timedelta,
    heartbeat: timedelta | None,
    retry: RetryPolicy | None,
    summary: str,
) -> dict[str, Any]:
    """execute_activity's options: the engine's defaults, replaced by a Zigflow document's
    `metadata.activityOptions` (zigflow.activity_options) where it sets them."""

    def seconds(name: str, default: timedelta | None) -> timedelta | None:
        return timedelta(seconds=options[name]) if name in options else default

    result: dict[str, Any] = {
        "start_to_close_timeout": seconds("start_to_close_seconds", start_to_close),
        "schedule_to_close_timeout": seconds("schedule_to_close_seconds", None),
        "schedule_to_start_timeout": seconds("schedule_to_start_seconds", None),
        "heartbeat_timeout": seconds("heartbeat_seconds", heartbeat),
        "retry_policy": retry,
        "summary": options.get("summary", summary),
    }
    retried: dict[str, Any] = {
        "initial_interval": seconds("initial_interval_seconds", None),
        "maximum_interval": seconds("maximum_interval_seconds", None),
        "backoff_coefficient": options.get("backoff_coefficient"),
        "maximum_attempts": options.get("maximum_attempts"),
        "non_retryable_error_types": options.get("non_retryable_error_types"),
    }
    if any(value is not None for value in retried.values()):
        base = retry or RetryPolicy()
        result["retry_policy"] = dataclasses.replace(
            base, **{key: value for key, value in retried.items() if value is not None}
        )
    if any(key in options for key in ("priority_key", "fairness_key", "fairness_weight")):
        result["priority"] = Priority(
            priority_key=options.get("priority_key"),
            fairness_key=options.get("fairness_key"),
            fairness_weight=options.get("fairness_weight"),
        )
    return result


class WorkflowRunners:
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
                **scheduling(
                    call.activity_options,
                    start_to_close=DEFAULT_HTTP_TIMEOUT,
                    heartbeat=HTTP_HEARTBEAT_TIMEOUT,
                    retry=retry_policy(call),
                    summary=f"{call.method} {call.uri}",
                ),
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

    async def upsert_search_attributes(self, attributes: dict[str, Any], path: str) -> None:
        try:
            updates = search_attributes.updates(attributes)
        except ValueError as error:
            raise DslException(
                DslError(errors.VALIDATION, 400, "Invalid search attribute", str(error), path)
            ) from None
        if updates:
            workflow.upsert_search_attributes(updates)

    async def call_activity(self, call: ActivityCallInput) -> Any:
        try:
            return await workflow.execute_activity(
                call.name,
                args=call.arguments,
                task_queue=call.task_queue,
                **scheduling(
                    call.activity_options,
                    start_to_close=DEFAULT_HTTP_TIMEOUT,
                    heartbeat=None,
                    retry=None,
                    summary=f"activity {call.name} on {call.task_queue}",
                ),
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

    def history_length(self) -> int:
        return workflow.info().get_current_history_length()

    def continue_as_new_suggested(self) -> bool:
        return workflow.info().is_continue_as_new_suggested()

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
