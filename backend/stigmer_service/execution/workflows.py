"""The execution workflow (run the agent, record the end, call the caller back) and a redelivery one."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from backend.stigmer_service import states
    from backend.stigmer_service.execution.activities import ExecutionActivities
    from backend.stigmer_service.execution.models import (
        CallbackWorkflowInput,
        CallbackWorkflowOutput,
        DeliverCallbackInput,
        ExecutionPolicy,
        ExecutionRef,
        ExecutionWorkflowInput,
        ExecutionWorkflowOutput,
        FinishInput,
        RunAgentOutput,
    )

_SHORT = timedelta(seconds=30)


def workflow_id(execution_id: str) -> str:
    return f"agent-execution-{execution_id}"


def callback_workflow_id(execution_id: str, token_hash: str) -> str:
    return f"agent-execution-{execution_id}-callback-{token_hash}"


async def _deliver(execution_id: str, policy: ExecutionPolicy) -> int:
    result = await workflow.execute_activity_method(
        ExecutionActivities.deliver_callback,
        DeliverCallbackInput(execution_id, policy.callback_max_attempts),
        start_to_close_timeout=_SHORT,
        # The activity heartbeats: a delivery cut short by a crashed worker is retried on another
        # within this timeout rather than after the whole start-to-close timeout.
        heartbeat_timeout=timedelta(seconds=policy.activity_heartbeat_timeout),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(seconds=policy.callback_retry_initial_interval),
            maximum_attempts=policy.callback_max_attempts,
        ),
    )
    return result.state


async def _discard(task: asyncio.Future[Any]) -> None:
    """Cancels a task we no longer need and waits for it to settle."""
    if not task.done():
        task.cancel()
    # Its outcome no longer matters.
    with contextlib.suppress(BaseException):
        await task


@workflow.defn
class AgentExecutionWorkflow:
    def __init__(self) -> None:
        self._cancel_reason: str | None = None

    @workflow.signal
    def cancel(self, reason: str) -> None:
        self._cancel_reason = reason or "cancelled"

    @workflow.run
    async def run(self, request: ExecutionWorkflowInput) -> ExecutionWorkflowOutput:
        ref = ExecutionRef(request.execution_id)
        # The correlation id of the handshake, also in the runner's and the activities' lines.
        extra = {"execution_id": request.execution_id, "handshake_id": request.handshake_id}
        workflow.logger.info("execution workflow started", extra=extra)
        try:
            outcome = await self._run(ref, request.policy)
        except asyncio.CancelledError:
            # The workflow itself was cancelled (through Temporal): the execution is cancelled.
            outcome = FinishInput(ref.execution_id, states.PHASE_CANCELLED)
        final = await workflow.execute_activity_method(
            ExecutionActivities.finish, outcome, start_to_close_timeout=_SHORT
        )
        state = await _deliver(ref.execution_id, request.policy)
        workflow.logger.info(
            "execution workflow ended",
            extra=extra | {"phase": final.phase, "callback_state": state},
        )
        return ExecutionWorkflowOutput(phase=final.phase)

    async def _run(self, ref: ExecutionRef, policy: ExecutionPolicy) -> FinishInput:
        started = await workflow.execute_activity_method(
            ExecutionActivities.mark_running, ref, start_to_close_timeout=_SHORT
        )
        if not started.started:
            # Cancelled before it ran: `finish` keeps the phase already written.
            return FinishInput(ref.execution_id, states.PHASE_CANCELLED)
        agent = workflow.start_activity_method(
            ExecutionActivities.run_agent,
            ref,
            start_to_close_timeout=timedelta(seconds=policy.timeout_seconds + 60),
            heartbeat_timeout=timedelta(seconds=policy.activity_heartbeat_timeout),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=policy.model_retry_initial_interval),
                maximum_attempts=policy.model_max_attempts,
            ),
        )
        pending: set[asyncio.Future[Any]] = {agent}
        caller: asyncio.Future[Any] | None = None
        if started.has_token:
            caller = workflow.start_activity_method(
                ExecutionActivities.caller_heartbeat,
                ref,
                start_to_close_timeout=timedelta(seconds=policy.timeout_seconds + 120),
                heartbeat_timeout=timedelta(seconds=policy.caller_heartbeat_timeout),
                retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1)),
            )
            pending.add(caller)
        cancel = asyncio.ensure_future(
            workflow.wait_condition(lambda: self._cancel_reason is not None)
        )
        pending.add(cancel)
        deadline = workflow.now() + timedelta(seconds=policy.timeout_seconds)
        try:
            while True:
                remaining = (deadline - workflow.now()).total_seconds()
                if remaining <= 0:
                    return FinishInput(
                        ref.execution_id,
                        states.PHASE_FAILED,
                        error_type=states.ERROR_TIMEOUT,
                        error_message=f"the execution did not end within {policy.timeout_seconds:g}s",
                    )
                done, still = await workflow.wait(
                    pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                pending = set(still)
                if agent in done:
                    return self._agent_outcome(ref, agent)
                if cancel in done:
                    return FinishInput(ref.execution_id, states.PHASE_CANCELLED)
                if caller is not None and caller in done:
                    try:
                        seen = caller.result()
                    except ActivityError:
                        continue  # Heartbeating gave up; the agent still runs.
                    if seen.caller_cancelled:
                        workflow.logger.info("caller gone: %s", seen.reason)
                        return FinishInput(ref.execution_id, states.PHASE_CANCELLED)
        finally:
            for task in (agent, cancel, *(t for t in [caller] if t is not None)):
                await _discard(task)

    @staticmethod
    def _agent_outcome(ref: ExecutionRef, agent: asyncio.Future[Any]) -> FinishInput:
        try:
            result: RunAgentOutput = agent.result()
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError):
                error_type = cause.type or states.ERROR_MODEL
                return FinishInput(
                    ref.execution_id,
                    states.PHASE_FAILED,
                    error_type=error_type,
                    error_message=cause.message,
                    error_retryable=error_type == states.ERROR_TRANSIENT_MODEL,
                )
            return FinishInput(
                ref.execution_id,
                states.PHASE_FAILED,
                error_type=states.ERROR_MODEL,
                error_message=str(cause or error),
            )
        return FinishInput(ref.execution_id, states.PHASE_COMPLETED, output=result.output)


@workflow.defn
class CallbackWorkflow:
    """Delivers an ended execution's outcome to a token that replaced the original one."""

    @workflow.run
    async def run(self, request: CallbackWorkflowInput) -> CallbackWorkflowOutput:
        return CallbackWorkflowOutput(await _deliver(request.execution_id, request.policy))
