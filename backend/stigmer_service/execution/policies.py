"""Timeouts and retry policies of the execution workflows, next to the models they fill.

The API builds an `ExecutionPolicy` from the settings when it starts a workflow (so replays see
the values of the start); the workflows turn it into Temporal `RetryPolicy`s here.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from backend.common import contract
from backend.stigmer_service.config import Settings
from backend.stigmer_service.execution.models import ExecutionPolicy

# Unlimited attempts: a sweeper must always run while any replica does.
SWEEPER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)
)


def execution_policy(settings: Settings, timeout_seconds: float | None = None) -> ExecutionPolicy:
    """The policy of one execution: its own timeout, or the settings' default."""
    return ExecutionPolicy(
        timeout_seconds=timeout_seconds or settings.default_execution_timeout,
        activity_heartbeat_timeout=settings.activity_heartbeat_timeout,
        model_max_attempts=settings.model_max_attempts,
        model_retry_initial_interval=settings.model_retry_initial_interval,
        callback_max_attempts=settings.callback_max_attempts,
        callback_retry_initial_interval=settings.callback_retry_initial_interval,
    )


def model_retry(policy: ExecutionPolicy) -> RetryPolicy:
    """Retries of the agent activity (transient provider errors, a crashed worker)."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=policy.model_retry_initial_interval),
        maximum_attempts=policy.model_max_attempts,
    )


def callback_retry(policy: ExecutionPolicy, attempts: int) -> RetryPolicy:
    """Retries of a delivery: `attempts` in all (the policy's, less those already made)."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=policy.callback_retry_initial_interval),
        maximum_attempts=attempts,
    )


# Attempts of one tool call: a transport failure (the server did not start, the connection
# dropped) is retried; a tool that answers with an error is not (the model gets the error).
TOOL_MAX_ATTEMPTS = 3
# How long one tool call may run (the tool client's own timeout is tooling.TOOL_TIMEOUT).
TOOL_TIMEOUT = 60.0


def tool_retry() -> RetryPolicy:
    """Retries of the call_tool activity."""
    return RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=TOOL_MAX_ATTEMPTS)


# A sub-agent's delegation waits (completed asynchronously) while the caller sweeper heartbeats
# it, as it does a workflow's `call: agent` (every caller_heartbeat_interval, 10 s by default):
# a service that stays away longer than this lets the attempt time out, and the next attempt
# takes the same child over with its own token.
DELEGATION_HEARTBEAT_TIMEOUT = 60.0


def delegation_retry() -> RetryPolicy:
    """Retries of the delegate activity: a lost attempt (the service died, the heartbeats
    stopped) is retried and finds its child by the idempotency key; the child's own failures are
    the model's to hear, never a reason to ask again."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_attempts=3,
        non_retryable_error_types=[contract.TRANSIENT_MODEL_ERROR],
    )


# A queued execution of a session is woken by a signal when the one ahead of it ends; should
# that signal be lost (the service died in between), it looks again after this long.
SESSION_RECHECK_SECONDS = 30.0
