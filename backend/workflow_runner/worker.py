"""Builds and runs the DSL worker: DslWorkflow, the HTTP, agent-call and event activities."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from backend.common import metrics as endpoints
from backend.common import sandbox, tracing
from backend.workflow_runner import metrics
from backend.workflow_runner.activities import call_http
from backend.workflow_runner.agent_call.activities import agent_call_activities
from backend.workflow_runner.claim_check import config as claim_check
from backend.workflow_runner.events.activities import EventActivities
from backend.workflow_runner.events.broker import BrokerSettings
from backend.workflow_runner.run_tasks import RunTasks, RunTaskSettings
from backend.workflow_runner.workflow_env import read_workflow_env
from backend.workflow_runner.workflows import DslWorkflow

TASK_QUEUE = "stigmer-workflows"
DEFAULT_TEMPORAL_ADDRESS = "127.0.0.1:7233"
DEFAULT_TEMPORAL_NAMESPACE = "default"
DEFAULT_STIGMER_ENDPOINT = "127.0.0.1:50051"
DEFAULT_MAX_CONCURRENT_ACTIVITIES = 100

log = structlog.get_logger(__name__)


def build_worker(
    client: Client,
    task_queue: str = TASK_QUEUE,
    max_concurrent_activities: int = DEFAULT_MAX_CONCURRENT_ACTIVITIES,
    stigmer_endpoint: str = DEFAULT_STIGMER_ENDPOINT,
    agent_activities: Sequence[Callable[..., Any]] | None = None,
    events: EventActivities | None = None,
    run_tasks: RunTaskSettings | None = None,
) -> Worker:
    """The worker; tests pass `agent_activities` to stand in for the Stigmer service.

    The event activities are always registered; without NATS_URL (`events` None and nothing in
    the environment) they fail a workflow that uses events, and nothing else changes. So is the
    `run: shell|script` activity: it runs only the kinds `run_tasks` (by default
    STIGMER_RUN_TASKS) allows, and fails the others with a configuration error.
    """
    if agent_activities is None:
        agent_activities = agent_call_activities(stigmer_endpoint)
    if events is None:
        events = EventActivities(BrokerSettings.from_env())
    processes = RunTasks(run_tasks if run_tasks is not None else RunTaskSettings.from_env())
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[DslWorkflow],
        activities=[
            call_http,
            read_workflow_env,
            processes.run_process,
            *agent_activities,
            *events.all(),
        ],
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=10),
        workflow_runner=sandbox.workflow_runner(),
    )


async def run_worker(
    address: str,
    namespace: str,
    task_queue: str,
    max_concurrent_activities: int,
    stigmer_endpoint: str,
    stop: asyncio.Event | None = None,
    metrics_listen: str = "",
    temporal_metrics_listen: str = "",
) -> None:
    """Runs until SIGTERM/SIGINT (or `stop`), then shuts down gracefully.

    `metrics_listen` serves the runner's Prometheus metrics, `temporal_metrics_listen` Temporal's
    SDK metrics (both HOST:PORT, off when empty); tracing follows `tracing.configure`.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    client = await Client.connect(
        address,
        namespace=namespace,
        # Large payloads go to the claim-check store; history keeps references.
        data_converter=claim_check.data_converter(),
        interceptors=tracing.temporal_interceptors(),
        runtime=endpoints.temporal_runtime(temporal_metrics_listen)
        if temporal_metrics_listen
        else None,
    )
    events = EventActivities(BrokerSettings.from_env())
    worker = build_worker(
        client, task_queue, max_concurrent_activities, stigmer_endpoint, events=events
    )
    metrics_server = endpoints.serve(metrics_listen, metrics.REGISTRY) if metrics_listen else None
    async with worker:
        log.info(
            "worker started",
            metrics=metrics_server.address if metrics_server else "",
            tracing=tracing.enabled(),
            temporal_address=address,
            namespace=namespace,
            task_queue=task_queue,
            max_concurrent_activities=max_concurrent_activities,
            stigmer_endpoint=stigmer_endpoint,
            events="on" if BrokerSettings.from_env() else "off (no NATS_URL)",
        )
        await stop.wait()
        log.info("worker stopping", task_queue=task_queue)
    await events.close()
    await claim_check.close(client.data_converter)
    if metrics_server is not None:
        metrics_server.stop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
