"""The Temporal worker that runs the execution workflows and their activities."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker

from backend.stigmer_service.config import Settings
from backend.stigmer_service.execution.activities import ExecutionActivities
from backend.stigmer_service.execution.models import ExecutionPolicy
from backend.stigmer_service.execution.workflows import AgentExecutionWorkflow, CallbackWorkflow
from backend.stigmer_service.metrics import ServiceMetrics
from backend.stigmer_service.store.repository import Store


def policy(settings: Settings, timeout_seconds: float | None = None) -> ExecutionPolicy:
    return ExecutionPolicy(
        timeout_seconds=timeout_seconds or settings.default_execution_timeout,
        activity_heartbeat_timeout=settings.activity_heartbeat_timeout,
        # The activity that heartbeats the caller must itself be retried on a live worker well
        # before the caller's own heartbeat timeout (60 s) runs out when a service replica dies.
        caller_heartbeat_timeout=max(
            settings.caller_heartbeat_interval * 3, settings.activity_heartbeat_timeout
        ),
        model_max_attempts=settings.model_max_attempts,
        model_retry_initial_interval=settings.model_retry_initial_interval,
        callback_max_attempts=settings.callback_max_attempts,
        callback_retry_initial_interval=settings.callback_retry_initial_interval,
    )


def create_worker(
    client: Client, store: Store, settings: Settings, metrics: ServiceMetrics | None = None
) -> Worker:
    """The worker; tracing comes with the client's interceptors."""
    activities = ExecutionActivities(store, client, settings, metrics)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[AgentExecutionWorkflow, CallbackWorkflow],
        activities=activities.all(),
        # Every running execution holds a slot for its whole life in `caller_heartbeat` (which
        # mostly sleeps); with Temporal's default of 100, the 101st concurrent call queued behind
        # those loops until callers timed out (seen in the benchmarks).
        max_concurrent_activities=settings.max_concurrent_activities,
    )
