"""The execution workflow (run the agent, record the end, call the caller back) and a redelivery one."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from backend.common import contract

with workflow.unsafe.imports_passed_through():
    from backend.stigmer_service import states
    from backend.stigmer_service.execution import policies
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


async def _deliver(execution_id: str, policy: ExecutionPolicy, already_made: int = 0) -> int:
    """Delivers the recorded end with retries: the attempts the policy allows, less those
    already made (by `run_agent`)."""
    attempts = max(1, policy.callback_max_attempts - already_made)
    result = await workflow.execute_activity_method(
        ExecutionActivities.deliver_callback,
        DeliverCallbackInput(execution_id, attempts),
        start_to_close_timeout=_SHORT,
        # The activity heartbeats: a delivery cut short by a crashed worker is retried on another
        # within this timeout rather than after the whole start-to-close timeout.
        heartbeat_timeout=timedelta(seconds=policy.activity_heartbeat_timeout),
        retry_policy=policies.callback_retry(policy, attempts),
    )
    return result.state


async def _discard(*tasks: asyncio.Future[Any]) -> None:
    """Cancels tasks we no longer need and waits for them to settle."""
    for task in tasks:
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
            ended = await self._run(ref, request.policy)
        except asyncio.CancelledError:
            # The workflow itself was cancelled (through Temporal): the execution is cancelled.
            ended = FinishInput(ref.execution_id, states.PHASE_CANCELLED)
        if isinstance(ended, RunAgentOutput):
            # The usual path: `run_agent` recorded the end and called the caller back itself.
            phase, state = ended.phase, ended.callback_state
            if state == states.CALLBACK_WAITING:
                # Its attempt failed; the others are made here.
                state = await _deliver(ref.execution_id, request.policy, already_made=1)
        else:
            final = await workflow.execute_activity_method(
                ExecutionActivities.finish, ended, start_to_close_timeout=_SHORT
            )
            phase = final.phase
            state = await _deliver(ref.execution_id, request.policy)
        workflow.logger.info(
            "execution workflow ended", extra=extra | {"phase": phase, "callback_state": state}
        )
        return ExecutionWorkflowOutput(phase=phase)

    async def _run(
        self, ref: ExecutionRef, policy: ExecutionPolicy
    ) -> RunAgentOutput | FinishInput:
        """The agent's recorded end, or the end to record: failed, timed out or cancelled."""
        agent = workflow.start_activity_method(
            ExecutionActivities.run_agent,
            ref,
            start_to_close_timeout=timedelta(seconds=policy.timeout_seconds + 60),
            heartbeat_timeout=timedelta(seconds=policy.activity_heartbeat_timeout),
            retry_policy=policies.model_retry(policy),
        )
        cancel = asyncio.ensure_future(
            workflow.wait_condition(lambda: self._cancel_reason is not None)
        )
        try:
            done, _ = await workflow.wait(
                {agent, cancel},
                timeout=policy.timeout_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except GeneratorExit:
            # The worker evicted this run from its cache (it is shutting down): the coroutine is
            # being closed and must not await anything; a replay elsewhere takes over.
            raise
        except BaseException:
            # The workflow was cancelled: stop the agent, then `run` records the end.
            await _discard(agent, cancel)
            raise
        await _discard(agent, cancel)
        if agent in done:
            return self._agent_outcome(ref, agent)
        if cancel in done:
            workflow.logger.info("execution cancelled: %s", self._cancel_reason)
            return FinishInput(ref.execution_id, states.PHASE_CANCELLED)
        return FinishInput(
            ref.execution_id,
            states.PHASE_FAILED,
            error_type=contract.EXECUTION_TIMEOUT,
            error_message=f"the execution did not end within {policy.timeout_seconds:g}s",
        )

    @staticmethod
    def _agent_outcome(
        ref: ExecutionRef, agent: asyncio.Future[Any]
    ) -> RunAgentOutput | FinishInput:
        try:
            result: RunAgentOutput = agent.result()
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, ApplicationError):
                error_type = cause.type or contract.MODEL_ERROR
                return FinishInput(
                    ref.execution_id,
                    states.PHASE_FAILED,
                    error_type=error_type,
                    error_message=cause.message,
                    error_retryable=error_type == contract.TRANSIENT_MODEL_ERROR,
                )
            return FinishInput(
                ref.execution_id,
                states.PHASE_FAILED,
                error_type=contract.MODEL_ERROR,
                error_message=str(cause or error),
            )
        return result


@workflow.defn
class CallbackWorkflow:
    """Delivers an ended execution's outcome to a token that replaced the original one."""

    @workflow.run
    async def run(self, request: CallbackWorkflowInput) -> CallbackWorkflowOutput:
        return CallbackWorkflowOutput(await _deliver(request.execution_id, request.policy))
