"""Runs a `call: agent` inside a workflow: the activity, its timeouts, retries and cancellation."""

from __future__ import annotations

import asyncio
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
    CancelAgentCallOutput,
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
# New commands on a cancelled call (the cancel activity at once): histories recorded before
# replay without them.
PROMPT_CANCEL_PATCH = "agent-call-cancels-its-execution-at-once"
# The cancel activity's request for the executions of this workflow's cancelled calls.
OF_CANCELLED_CALLS = CancelAgentCallInput(execution_id="")


def start_to_close_timeout(call: CallAgentInput) -> timedelta:
    """The execution's timeout plus a margin for queueing and the callback's delivery."""
    timeout = timedelta(seconds=call.timeout_seconds) if call.timeout_seconds else DEFAULT_TIMEOUT
    return timeout + max(MIN_MARGIN, timeout / 10)


async def run_agent_call(call: CallAgentInput) -> dict[str, Any]:
    """Calls the agent and returns its result object (`output`, `execution_id`, `steps`, ...).

    A failure of the agent or of the call is raised as the `ActivityError` Temporal reports. On
    cancellation of the workflow (or of the task, by a DSL `timeout`) the activity is cancelled
    and its execution with it, at once (the cancel activity finds the execution in the
    activity's heartbeat details); then the activity's cancellation is awaited: the service
    reports it when the execution has ended, and the cancellation propagates. Workflows that
    started before this waited for the service's next heartbeat of the caller instead (minutes
    in a large deployment), and still do when replayed.
    """
    prompt_cancel = workflow.patched(PROMPT_CANCEL_PATCH)
    handle = workflow.start_activity(
        CALL_AGENT_ACTIVITY,
        call,
        result_type=dict,
        start_to_close_timeout=start_to_close_timeout(call),
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        retry_policy=RETRY_POLICY,
        cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        summary=f"call agent {call.agent}" + (f" at {call.task_path}" if call.task_path else ""),
    )
    cancelled_at_once = False
    try:
        if not prompt_cancel:
            result = await handle
        else:
            try:
                # Shielded: a cancellation reaches this code first, not the activity.
                result = await asyncio.shield(handle)
            except asyncio.CancelledError:
                handle.cancel()  # Before the cancel activity: it finds the request recorded.
                cancelled_at_once = await _cancel_execution(OF_CANCELLED_CALLS)
                result = await handle
    except ActivityError as error:
        execution_id = _known_execution_id(error)
        if execution_id and not cancelled_at_once:
            await _cancel_execution(CancelAgentCallInput(execution_id))
        raise
    # An older service sends no `steps`: the DSL sees an empty list all the same.
    return {"steps": [], **result}


async def _cancel_execution(request: CancelAgentCallInput) -> bool:
    """Nobody waits on the execution any more: make sure it does not keep running (best
    effort); True when it was cancelled now."""
    try:
        done = await workflow.execute_activity(
            CANCEL_AGENT_CALL_ACTIVITY,
            request,
            result_type=CancelAgentCallOutput,
            start_to_close_timeout=CLEANUP_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
    except ActivityError as cleanup_error:
        # The call's own failure is what the workflow must see, not the cleanup's.
        workflow.logger.warning(
            "could not cancel agent execution %s: %s",
            request.execution_id or "(of the cancelled call)",
            cleanup_error.cause,
        )
        return False
    return done.cancelled


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
