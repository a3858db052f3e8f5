"""Keeps waiting callers alive: one sweeper per deployment heartbeats every caller's activity.

A caller's agent-call activity has a heartbeat timeout, so that a lost execution does not leave it
waiting for days. The service heartbeats it with the callback token. One activity per execution
doing that held a worker slot for the execution's whole life and cost every call an extra
activity start and cancel; instead one long activity sweeps all executions that have not ended,
in rounds of at most `caller_heartbeat_interval` seconds: each round reads the waiting callers
once and heartbeats those that are due (`caller_schedule.py`: every caller at the base interval
while the budget allows, stretched beyond it in a large deployment, never beyond a quarter of
the caller's own heartbeat timeout). It runs in a workflow with a fixed id per task queue, so
there is one sweeper however many replicas serve, and when its replica dies Temporal retries it
on another one after its heartbeat timeout.

A heartbeat carries the execution id as its details: Temporal keeps only the last heartbeat's
details, and the caller reads the execution to cancel from them (when its workflow is cancelled,
or when its activity timed out because this service was gone).

A sweep also notices callers that went away: a cancelled caller's heartbeat raises
`AsyncActivityCancelledError`, a closed caller's returns NOT_FOUND; either way the execution
workflow gets the `cancel` signal, ends CANCELLED, and its callback tells the caller (or records
that it had already closed).

A sweep is bounded: each RPC has its own timeout, all its RPCs share a budget per second
(`caller_heartbeat_rps`, under the namespace's rate limit; more only when the callers' own
heartbeat timeouts need more) and a RESOURCE_EXHAUSTED answer pauses them all and is retried
(back-off, not a failure). A token that does not decrypt skips
its caller only; an execution whose own workflow is gone is ended (`lost_executions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import AsyncActivityCancelledError, Client
from temporalio.service import RPCError, RPCStatusCode

with workflow.unsafe.imports_passed_through():
    from backend.stigmer_service import logs, states
    from backend.stigmer_service.config import Settings
    from backend.stigmer_service.errors import NotFound
    from backend.stigmer_service.execution import callback, policies
    from backend.stigmer_service.execution.caller_schedule import CallerSchedule, Due
    from backend.stigmer_service.execution.lost_executions import LostExecutions
    from backend.stigmer_service.execution.models import CallerSweepInput
    from backend.stigmer_service.execution.rate_limit import TokenBucket
    from backend.stigmer_service.execution.workflow_ids import workflow_id as execution_workflow_id
    from backend.stigmer_service.metrics import ServiceMetrics
    from backend.stigmer_service.store.records import UnreadableToken, WaitingCaller
    from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)

# Heartbeat RPCs in flight at once during a sweep.
SWEEP_CONCURRENCY = 64
# A heartbeat answered RESOURCE_EXHAUSTED (the namespace's rate limit) pauses every RPC of the
# sweep, first for this long, doubling up to the maximum, for at most this many tries.
THROTTLE_BACKOFF = 0.5
THROTTLE_BACKOFF_MAX = 8.0
THROTTLE_ATTEMPTS = 5


def workflow_id(task_queue: str) -> str:
    return f"stigmer-caller-heartbeats-{task_queue}"


class CallerHeartbeats:
    def __init__(
        self,
        store: Store,
        client: Client,
        settings: Settings,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.metrics = metrics or ServiceMetrics()
        self.bucket = TokenBucket(settings.caller_heartbeat_rps)
        self.lost = LostExecutions(store, client, settings, self.bucket)
        self.schedule = CallerSchedule(settings)
        self._reported: set[str] = set()  # Unreadable tokens already logged by this sweeper.
        self._round_seconds = settings.caller_heartbeat_interval
        self._over_budget = False

    @activity.defn
    async def heartbeat_callers(self, request: CallerSweepInput) -> None:
        """Sweeps a round at a time for `run_seconds`, then returns (the workflow continues as
        new; this object, and so the schedule, stays with the worker)."""
        deadline = time.monotonic() + request.run_seconds
        while time.monotonic() < deadline:
            began = time.monotonic()
            await self.sweep()
            next_sweep = began + self._round_seconds
            while (remaining := next_sweep - time.monotonic()) > 0:
                # Alive while it waits, whatever the interval (the SDK throttles these).
                activity.heartbeat()
                await asyncio.sleep(min(remaining, 1.0))

    async def sweep(self) -> int:
        """One round: checks and heartbeats the waiting callers that are due before the next
        round, each at its own time (`caller_schedule.py`); returns how many it handled."""
        found = await self.store.waiting_callers()
        self._report(found.unreadable)
        plan = self.schedule.plan(found.callers)
        began = time.monotonic()
        self._round_seconds = plan.seconds
        self.metrics.caller_heartbeat_interval(plan.heartbeat_interval)
        self._pace(plan.rps)
        gate = asyncio.Semaphore(SWEEP_CONCURRENCY)

        async def one(due: Due) -> None:
            if (wait := began + due.at - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            async with gate:
                lost = due.check and await self._lost(due.caller)
                if due.heartbeat and not lost:
                    await self._heartbeat(due.caller)

        async with _keeping_alive():
            await asyncio.gather(*(one(due) for due in plan.due))
        return len(plan.due)

    def _pace(self, rps: float) -> None:
        """Paces the RPCs to the round's rate; says so when the callers' timeouts need more
        than the budget (once, until they fit again)."""
        over = rps > self.settings.caller_heartbeat_rps > 0
        if over and not self._over_budget:
            log.warning(
                "the waiting callers' heartbeat timeouts need more RPCs than "
                "STIGMER_CALLER_HEARTBEAT_RPS; sending what they need",
                rps=round(rps, 1),
                budget=self.settings.caller_heartbeat_rps,
            )
        self._over_budget = over
        if rps != self.bucket.rate:
            self.bucket.set_rate(rps)

    def _report(self, unreadable: list[UnreadableToken]) -> None:
        """Counts the callers skipped for an unreadable token; logs each once (never the token)."""
        if unreadable:
            self.metrics.caller_tokens_unreadable(len(unreadable))
        for row in unreadable:
            if row.execution_id not in self._reported:
                log.warning(
                    "caller token unreadable: not heartbeated (is STIGMER_SECRETS_KEY the same "
                    "on every replica?)",
                    execution_id=row.execution_id,
                    token_hash=row.token_hash,
                )
        self._reported = {row.execution_id for row in unreadable}

    async def _lost(self, caller: WaitingCaller) -> bool:
        self.schedule.checked(caller.execution_id)
        self.metrics.caller_sweeper_rpc("workflow_check")
        try:
            return await self.lost.end_if_lost(caller)
        except Exception as error:
            # Cannot tell now: heartbeat it as before, and check again next interval.
            log.warning(
                "could not check the execution's workflow",
                error=type(error).__name__,
                execution_id=caller.execution_id,
            )
            return False

    async def _heartbeat(self, caller: WaitingCaller) -> None:
        fields = {"execution_id": caller.execution_id, "token_hash": caller.token_hash}
        self.schedule.heartbeated(caller)
        try:
            await self._send(caller)
        except AsyncActivityCancelledError:
            await self._stop(caller, "the caller's activity was cancelled")
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND and not await self._still_waiting(caller):
                return  # Ended (or a new token came) since the round read it: nothing to do.
            if error.status == RPCStatusCode.NOT_FOUND and await self._caller_closed(caller):
                await self._stop(caller, "the caller's workflow has closed")
                return
            # Timed out, throttled, or retried caller: a new attempt may still bring a new token.
            log.info(
                "caller heartbeat not delivered",
                status=error.status.name if error.status else "",
                **fields,
            )
        except Exception as error:
            # One caller's odd failure must not stop the sweep of all the others.
            log.warning("caller heartbeat failed", error=type(error).__name__, **fields)

    async def _send(self, caller: WaitingCaller) -> None:
        """One heartbeat within the budget and the RPC timeout; RESOURCE_EXHAUSTED pauses the
        whole sweep and tries again (the last such answer is raised)."""
        handle = self.client.get_async_activity_handle(task_token=caller.token)
        timeout = self.settings.caller_heartbeat_rpc_timeout
        backoff = THROTTLE_BACKOFF
        for attempt in range(1, THROTTLE_ATTEMPTS + 1):
            await self.bucket.acquire()
            self.metrics.caller_sweeper_rpc("heartbeat")
            try:
                # The SDK's own deadline, and ours: a call that ignores it still ends.
                await asyncio.wait_for(
                    handle.heartbeat(
                        {"execution_id": caller.execution_id},
                        rpc_timeout=timedelta(seconds=timeout),
                    ),
                    timeout + 1.0,
                )
                return
            except TimeoutError:
                raise RPCError(
                    "heartbeat timed out", RPCStatusCode.DEADLINE_EXCEEDED, b""
                ) from None
            except RPCError as error:
                if error.status != RPCStatusCode.RESOURCE_EXHAUSTED or attempt == THROTTLE_ATTEMPTS:
                    raise
                self.bucket.pause(backoff)
                backoff = min(backoff * 2, THROTTLE_BACKOFF_MAX)

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

    async def _still_waiting(self, caller: WaitingCaller) -> bool:
        """Whether the execution still waits with this token: a round sends its heartbeats
        over several seconds, and an execution that ended meanwhile has had its callback."""
        try:
            current = await self.store.for_delivery(caller.execution_id)
        except NotFound:
            return False
        except Exception:
            return True  # Cannot tell: as if it waits.
        return current.token_hash == caller.token_hash and current.execution.phase in (
            states.PHASE_PENDING,
            states.PHASE_RUNNING,
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


@contextlib.asynccontextmanager
async def _keeping_alive() -> AsyncIterator[None]:
    """Heartbeats the sweeper's own activity through a round, however long it waits between
    its callers (the SDK throttles these)."""
    if not activity.in_activity():
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(1.0)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


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
