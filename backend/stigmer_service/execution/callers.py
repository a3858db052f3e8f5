"""Keeps waiting callers alive: one sweeper per deployment heartbeats every caller's activity.

A caller's agent-call activity has a heartbeat timeout, so that a lost execution does not leave it
waiting for days. The service heartbeats it with the callback token. One activity per execution
doing that held a worker slot for the execution's whole life and cost every call an extra
activity start and cancel; instead one long activity sweeps all executions that have not ended,
every `caller_heartbeat_interval` seconds. It runs in a workflow with a fixed id per task queue,
so there is one sweeper however many replicas serve, and when its replica dies Temporal retries
it on another one after its heartbeat timeout.

A sweep also notices callers that went away: a cancelled caller's heartbeat raises
`AsyncActivityCancelledError`, a closed caller's returns NOT_FOUND; either way the execution
workflow gets the `cancel` signal, ends CANCELLED, and its callback tells the caller (or records
that it had already closed).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import AsyncActivityCancelledError, Client
from temporalio.service import RPCError, RPCStatusCode

with workflow.unsafe.imports_passed_through():
    from backend.stigmer_service import logs
    from backend.stigmer_service.config import Settings
    from backend.stigmer_service.execution import callback, policies
    from backend.stigmer_service.execution.models import CallerSweepInput
    from backend.stigmer_service.execution.workflows import workflow_id as execution_workflow_id
    from backend.stigmer_service.store.records import WaitingCaller
    from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)

# Heartbeat RPCs in flight at once during a sweep.
SWEEP_CONCURRENCY = 64


def workflow_id(task_queue: str) -> str:
    return f"stigmer-caller-heartbeats-{task_queue}"


class CallerHeartbeats:
    def __init__(self, store: Store, client: Client, settings: Settings) -> None:
        self.store = store
        self.client = client
        self.settings = settings

    @activity.defn
    async def heartbeat_callers(self, request: CallerSweepInput) -> None:
        """Sweeps every interval for `run_seconds`, then returns (the workflow continues as new)."""
        deadline = time.monotonic() + request.run_seconds
        while time.monotonic() < deadline:
            began = time.monotonic()
            await self.sweep()
            next_sweep = began + self.settings.caller_heartbeat_interval
            while (remaining := next_sweep - time.monotonic()) > 0:
                # Alive while it waits, whatever the interval (the SDK throttles these).
                activity.heartbeat()
                await asyncio.sleep(min(remaining, 1.0))

    async def sweep(self) -> int:
        """Heartbeats every caller that waits now; returns how many."""
        waiting = await self.store.waiting_callers()
        gate = asyncio.Semaphore(SWEEP_CONCURRENCY)

        async def one(caller: WaitingCaller) -> None:
            async with gate:
                await self._heartbeat(caller)
                if activity.in_activity():
                    activity.heartbeat()  # A sweep of many callers outlasts the timeout.

        await asyncio.gather(*(one(caller) for caller in waiting))
        return len(waiting)

    async def _heartbeat(self, caller: WaitingCaller) -> None:
        fields = {"execution_id": caller.execution_id, "token_hash": caller.token_hash}
        try:
            await self.client.get_async_activity_handle(task_token=caller.token).heartbeat()
        except AsyncActivityCancelledError:
            await self._stop(caller, "the caller's activity was cancelled")
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND and await self._caller_closed(caller):
                await self._stop(caller, "the caller's workflow has closed")
                return
            # Timed out or retried caller: a new attempt may still bring a new token.
            log.info(
                "caller heartbeat not delivered",
                status=error.status.name if error.status else "",
                **fields,
            )
        except Exception as error:
            # One caller's odd failure must not stop the sweep of all the others.
            log.warning("caller heartbeat failed", error=type(error).__name__, **fields)

    async def _stop(self, caller: WaitingCaller, reason: str) -> None:
        log.info("caller gone", reason=reason, execution_id=caller.execution_id)
        try:
            await self.client.get_workflow_handle(
                execution_workflow_id(caller.execution_id)
            ).signal("cancel", reason)
        except RPCError as error:
            # Already closed: it has ended and delivered (or will redeliver) on its own.
            log.info(
                "could not signal the execution workflow",
                status=error.status.name if error.status else "",
                execution_id=caller.execution_id,
            )

    async def _caller_closed(self, caller: WaitingCaller) -> bool:
        handle = callback.caller_workflow(self.client, caller.caller)
        if handle is None:
            return False
        try:
            description = await handle.describe()
        except RPCError:
            return False
        return bool(
            description.raw_description.workflow_execution_info.status
            != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
        )


@workflow.defn
class CallerHeartbeatWorkflow:
    """Runs the sweeper for ever, retried on any live worker, continuing as new after each run."""

    @workflow.run
    async def run(self, request: CallerSweepInput) -> None:
        await workflow.execute_activity_method(
            CallerHeartbeats.heartbeat_callers,
            request,
            start_to_close_timeout=timedelta(seconds=request.run_seconds + 60),
            heartbeat_timeout=timedelta(seconds=request.heartbeat_timeout),
            retry_policy=policies.SWEEPER_RETRY,
        )
        workflow.continue_as_new(request)
