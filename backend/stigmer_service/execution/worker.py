"""The Temporal worker that runs the execution workflows and their activities."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import tenacity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from backend.common import sandbox
from backend.stigmer_service import logs
from backend.stigmer_service.config import Settings
from backend.stigmer_service.execution import callers
from backend.stigmer_service.execution.activities import ExecutionActivities
from backend.stigmer_service.execution.callers import CallerHeartbeats, CallerHeartbeatWorkflow
from backend.stigmer_service.execution.models import CallerSweepInput
from backend.stigmer_service.execution.workflows import AgentExecutionWorkflow, CallbackWorkflow
from backend.stigmer_service.metrics import ServiceMetrics
from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)


def create_worker(
    client: Client, store: Store, settings: Settings, metrics: ServiceMetrics | None = None
) -> Worker:
    """The worker; tracing comes with the client's interceptors."""
    activities = ExecutionActivities(store, client, settings, metrics)
    heartbeats = CallerHeartbeats(store, client, settings, metrics)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[AgentExecutionWorkflow, CallbackWorkflow, CallerHeartbeatWorkflow],
        activities=[*activities.all(), heartbeats.heartbeat_callers],
        max_concurrent_activities=settings.max_concurrent_activities,
        workflow_runner=sandbox.workflow_runner(),
    )


# How often each replica makes sure the sweeper runs (one cheap idempotent start).
SWEEPER_CHECK_INTERVAL = 60.0


async def keep_caller_heartbeats_running(client: Client, settings: Settings) -> None:
    """Makes sure the sweeper runs, now and every minute after: should it be terminated or fail
    for good, a live replica starts it again."""
    while True:
        await keep_starting_caller_heartbeats(client, settings)
        await asyncio.sleep(SWEEPER_CHECK_INTERVAL)


async def keep_starting_caller_heartbeats(client: Client, settings: Settings) -> None:
    """`start_caller_heartbeats` until it succeeds: a Temporal outage while the service starts
    must not stop the service (its worker reconnects on its own), nor leave callers without the
    sweeper once Temporal is back."""

    def warn(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "could not start the caller sweeper; retrying",
            error=type(error).__name__,
            attempt=state.attempt_number,
        )

    async for attempt in tenacity.AsyncRetrying(
        wait=tenacity.wait_exponential(multiplier=0.5, max=30), before_sleep=warn
    ):
        with attempt:
            await start_caller_heartbeats(client, settings)


async def start_caller_heartbeats(client: Client, settings: Settings) -> None:
    """Starts the deployment's one caller sweeper, unless a replica already did."""
    await client.start_workflow(
        CallerHeartbeatWorkflow.run,
        CallerSweepInput(heartbeat_timeout=settings.activity_heartbeat_timeout),
        id=callers.workflow_id(settings.task_queue),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        rpc_timeout=timedelta(seconds=settings.start_rpc_timeout),
    )
