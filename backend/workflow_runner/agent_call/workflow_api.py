"""Runs a `call: agent` inside a workflow: the activity, its timeouts, retries and cancellation."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError, TimeoutError

from backend.workflow_runner.agent_call.models import (
    CALL_AGENT_ACTIVITY,
    CANCEL_AGENT_CALL_ACTIVITY,
    NON_RETRYABLE_ERROR_TYPES,
    CallAgentInput,
    CancelAgentCallInput,
)

# Same default as the activity sends to the service, so both sides agree on the execution timeout.
DEFAULT_TIMEOUT = timedelta(minutes=10)
MIN_MARGIN = timedelta(seconds=30)
# The Stigmer service heartbeats the waiting activity (every 10 s in a small deployment, and
# at least every quarter of this timeout, which the activity tells it, in a large one); the
# heartbeats are also how a workflow cancellation reaches the running agent. A lost service or
# execution shows up within this timeout: 10 min instead of the earlier 60 s, because every
# heartbeat is a Temporal RPC and a longer timeout lets a deployment with many waiting calls send
# fewer of them (caller_schedule.py in the service). The start-to-close timeout still bounds the
# whole call (and Temporal caps this at it, so a short call's is shorter).
HEARTBEAT_TIMEOUT = timedelta(minutes=10)
# Transient failures (service unavailable, deadline, lost heartbeats) retry with the same
# idempotency key, so a retry never starts a second agent run.
RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES,
)
CLEANUP_TIMEOUT = timedelta(seconds=30)


def start_to_close_timeout(call: CallAgentInput) -> timedelta:
    """The execution's timeout plus a margin for queueing and the callback's delivery."""
    timeout = timedelta(seconds=call.timeout_seconds) if call.timeout_seconds else DEFAULT_TIMEOUT
    return timeout + max(MIN_MARGIN, timeout / 10)


async def run_agent_call(call: CallAgentInput) -> dict[str, Any]:
    """Calls the agent and returns its result object (`output`, `execution_id`, `steps`, ...).

    A failure of the agent or of the call is raised as the `ActivityError` Temporal reports. On
    cancellation of the workflow the activity's cancellation is awaited: the service sees it on
    its next heartbeat, cancels the execution and reports back; the cancellation then propagates.
    """
    try:
        result = await workflow.execute_activity(
            CALL_AGENT_ACTIVITY,
            call,
            result_type=dict,
            start_to_close_timeout=start_to_close_timeout(call),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RETRY_POLICY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"call agent {call.agent}"
            + (f" at {call.task_path}" if call.task_path else ""),
        )
    except ActivityError as error:
        execution_id = _known_execution_id(error)
        if execution_id:
            await _cancel_execution(execution_id)
        raise
    # An older service sends no `steps`: the DSL sees an empty list all the same.
    return {"steps": [], **result}


async def _cancel_execution(execution_id: str) -> None:
    """Nobody waits on the execution any more: make sure it does not keep running (best effort)."""
    try:
        await workflow.execute_activity(
            CANCEL_AGENT_CALL_ACTIVITY,
            CancelAgentCallInput(execution_id),
            start_to_close_timeout=CLEANUP_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
    except ActivityError as cleanup_error:
        # The call's own failure is what the workflow must see, not the cleanup's.
        workflow.logger.warning(
            "could not cancel agent execution %s: %s", execution_id, cleanup_error.cause
        )


def _known_execution_id(error: ActivityError) -> str:
    """The execution of a call that was cancelled or timed out, when the activity recorded it."""
    details: Sequence[Any] = ()
    if isinstance(error.cause, CancelledError):
        details = error.cause.details
    elif isinstance(error.cause, TimeoutError):
        details = error.cause.last_heartbeat_details
    for detail in details:
        if isinstance(detail, dict) and detail.get("execution_id"):
            return str(detail["execution_id"])
    return ""
