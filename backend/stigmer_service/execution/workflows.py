"""The execution workflow (run the agent, record the end, call the caller back) and a redelivery one."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

from backend.common import contract

with workflow.unsafe.imports_passed_through():
    from backend.stigmer_service import states
    from backend.stigmer_service.execution import approval, policies, tooling
    from backend.stigmer_service.execution.activities import ExecutionActivities
    from backend.stigmer_service.execution.models import (
        ApprovalPolicy,
        ApprovalTimeoutInput,
        CallbackWorkflowInput,
        CallbackWorkflowOutput,
        CallToolInput,
        CancelChildrenInput,
        DelegateInput,
        DelegationEndedInput,
        DeliverCallbackInput,
        ExecutionPolicy,
        ExecutionRef,
        ExecutionWorkflowInput,
        ExecutionWorkflowOutput,
        FinishInput,
        LoopToolCall,
        LoopToolResult,
        LoopTurn,
        ModelTurnInput,
        RunAgentOutput,
        ToolDecision,
    )
    from backend.stigmer_service.store.documents import SUB_AGENTS_SERVER

_SHORT = timedelta(seconds=30)
# Runs that started before sub-agents existed replay without the cancel_children activity.
_CANCEL_SUB_AGENTS = "cancel-sub-agents"
_TIMED_OUT = contract.EXECUTION_TIMEOUT


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
        # Decisions on gated tool calls by step index; the first one for a step counts.
        self._decisions: dict[int, ToolDecision] = {}
        self._approval: ApprovalPolicy | None = None
        # Set by the signal that an earlier execution of the session has ended.
        self._session_turn = False

    @workflow.signal
    def cancel(self, reason: str) -> None:
        self._cancel_reason = reason or "cancelled"

    @workflow.signal
    def decide_tool_call(self, decision: ToolDecision) -> None:
        """Wakes a gated tool call: the API recorded the decision in the store first."""
        self._decisions.setdefault(decision.step_index, decision)

    @workflow.signal
    def session_turn(self) -> None:
        self._session_turn = True

    @workflow.run
    async def run(self, request: ExecutionWorkflowInput) -> ExecutionWorkflowOutput:
        ref = ExecutionRef(request.execution_id, fresh_session=request.fresh_session)
        # The correlation id of the handshake, also in the runner's and the activities' lines.
        extra = {"execution_id": request.execution_id, "handshake_id": request.handshake_id}
        workflow.logger.info("execution workflow started", extra=extra)
        self._approval = request.approval
        ended: RunAgentOutput | FinishInput
        try:
            if request.session_queue and not await self._queued(ref):
                ended = FinishInput(ref.execution_id, states.PHASE_CANCELLED)
            else:
                ended = await self._run(ref, request.policy, request.max_steps)
        except asyncio.CancelledError:
            # The workflow itself was cancelled (through Temporal): the execution is cancelled.
            ended = FinishInput(ref.execution_id, states.PHASE_CANCELLED)
        if (
            isinstance(ended, FinishInput)
            and request.max_steps > 0
            and (ended.phase == states.PHASE_CANCELLED or ended.error_type == _TIMED_OUT)
            and workflow.patched(_CANCEL_SUB_AGENTS)
        ):
            # Cancelled or timed out, maybe while a sub-agent worked (other ends come from the
            # loop, which waits for its delegations): that sub-agent is cancelled too, and
            # cancels its own.
            await workflow.execute_activity_method(
                ExecutionActivities.cancel_children,
                CancelChildrenInput(ref.execution_id, "the parent execution ended first"),
                start_to_close_timeout=_SHORT,
            )
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

    async def _queued(self, ref: ExecutionRef) -> bool:
        """Waits, holding a timer and a signal only, until every earlier execution of the
        session has ended; False when the execution was cancelled meanwhile."""
        while self._cancel_reason is None:
            self._session_turn = False  # Before asking: a signal during the ask counts.
            ahead = await workflow.execute_activity_method(
                ExecutionActivities.session_ahead, ref, start_to_close_timeout=_SHORT
            )
            if not ahead:
                return True
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._session_turn or self._cancel_reason is not None,
                    timeout=timedelta(seconds=policies.SESSION_RECHECK_SECONDS),
                )
        return False

    async def _run(
        self, ref: ExecutionRef, policy: ExecutionPolicy, max_steps: int
    ) -> RunAgentOutput | FinishInput:
        """The agent's recorded end, or the end to record: failed, timed out or cancelled."""
        agent: asyncio.Future[Any]
        if max_steps > 0:
            # An agent with tools. Runs started before tools existed, and agents without tools,
            # have max_steps 0 and never take this branch: their histories replay unchanged.
            agent = asyncio.ensure_future(self._loop(ref, policy, max_steps))
        else:
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

    async def _loop(
        self, ref: ExecutionRef, policy: ExecutionPolicy, max_steps: int
    ) -> RunAgentOutput | FinishInput:
        """The agent loop: each model turn and each tool call is an activity of its own; this
        holds only the (masked) conversation. Ends with the turn that answers (recorded and
        delivered by it), or MaxStepsExceeded after `max_steps` turns without an answer."""
        turns: list[LoopTurn] = []
        next_index = 0
        for _ in range(max_steps):
            reply = await workflow.execute_activity_method(
                ExecutionActivities.model_turn,
                ModelTurnInput(ref.execution_id, turns, next_index, self._approval),
                start_to_close_timeout=timedelta(seconds=policy.timeout_seconds + 60),
                heartbeat_timeout=timedelta(seconds=policy.activity_heartbeat_timeout),
                retry_policy=policies.model_retry(policy),
            )
            if reply.ended is not None:
                return reply.ended
            next_index = reply.next_index
            results: list[LoopToolResult] = []
            for call in reply.calls:
                # Only a gated call adds commands (a timer, maybe an activity): the histories
                # of loops without approvals replay unchanged.
                instead = await self._approval_of(ref, call)
                if isinstance(instead, FinishInput):
                    return instead
                if instead is None:
                    run = self._delegate if call.server == SUB_AGENTS_SERVER else self._call_tool
                    instead = await run(ref, call, policy)
                results.append(instead)
            turns.append(LoopTurn(reply.text, reply.calls, results))
        return FinishInput(
            ref.execution_id,
            states.PHASE_FAILED,
            error_type=contract.MAX_STEPS_EXCEEDED,
            error_message=f"the agent did not answer within {max_steps} model turns (max_steps)",
        )

    async def _approval_of(
        self, ref: ExecutionRef, call: LoopToolCall
    ) -> LoopToolResult | FinishInput | None:
        """None when the call may run (needs no approval, or was approved); else what the
        model hears instead, or the end (a timeout that fails the execution). The wait is a
        durable timer and a signal: no activity runs while a person decides."""
        policy = self._approval
        if policy is None or not approval.gated(policy, call):
            return None
        try:
            await workflow.wait_condition(
                lambda: call.index in self._decisions,
                timeout=timedelta(seconds=policy.timeout_seconds),
            )
            decision = self._decisions[call.index]
        except TimeoutError:
            # The store is the record: a decision written there first still stands.
            decision = await workflow.execute_activity_method(
                ExecutionActivities.approval_timed_out,
                ApprovalTimeoutInput(
                    ref.execution_id, call, policy.fail_on_timeout, policy.timeout_seconds
                ),
                start_to_close_timeout=_SHORT,
            )
        if decision.approve:
            return None
        if not decision.timed_out:
            return LoopToolResult(
                call.call_id, approval.rejection(decision.decided_by, decision.reason), True
            )
        text = approval.timed_out(policy.timeout_seconds)
        if policy.fail_on_timeout:
            return FinishInput(
                ref.execution_id,
                states.PHASE_FAILED,
                error_type=contract.TOOL_APPROVAL_TIMED_OUT,
                error_message=f"{text}: {call.server}.{call.tool} (step {call.index})",
            )
        return LoopToolResult(call.call_id, text, is_error=True)

    @staticmethod
    async def _delegate(
        ref: ExecutionRef, call: LoopToolCall, policy: ExecutionPolicy
    ) -> LoopToolResult:
        """Runs a sub-agent as an execution of its own and waits for its end, holding no
        activity slot: the child completes the delegate activity through its task token."""
        try:
            payload = await workflow.execute_activity_method(
                ExecutionActivities.delegate,
                DelegateInput(ref.execution_id, call),
                start_to_close_timeout=timedelta(seconds=policy.timeout_seconds + 60),
                heartbeat_timeout=timedelta(seconds=policies.DELEGATION_HEARTBEAT_TIMEOUT),
                retry_policy=policies.delegation_retry(),
            )
            if "error" in payload:
                result = LoopToolResult(call.call_id, str(payload["error"]), is_error=True)
            else:
                result = LoopToolResult(call.call_id, tooling.bounded(str(payload["output"])))
        except ActivityError as error:
            cause = error.cause
            if isinstance(cause, CancelledError):
                raise  # The loop is being cancelled (and cancels the child).
            if isinstance(cause, ApplicationError):
                text = f"the sub-agent failed ({cause.type}): {cause.message}"
            else:
                text = f"the sub-agent did not answer: {cause or error}"
            result = LoopToolResult(call.call_id, tooling.bounded(text), is_error=True)
        await workflow.execute_activity_method(
            ExecutionActivities.delegation_ended,
            DelegationEndedInput(ref.execution_id, call, result),
            start_to_close_timeout=_SHORT,
        )
        return result

    @staticmethod
    async def _call_tool(
        ref: ExecutionRef, call: LoopToolCall, policy: ExecutionPolicy
    ) -> LoopToolResult:
        try:
            return await workflow.execute_activity_method(
                ExecutionActivities.call_tool,
                CallToolInput(ref.execution_id, call, policies.TOOL_MAX_ATTEMPTS),
                start_to_close_timeout=timedelta(seconds=policies.TOOL_TIMEOUT + 30),
                heartbeat_timeout=timedelta(seconds=policy.activity_heartbeat_timeout),
                retry_policy=policies.tool_retry(),
            )
        except ActivityError as error:
            # Out of attempts without an answer (timeouts): the model hears it as the result.
            cause = error.cause
            if isinstance(cause, CancelledError):
                raise  # The loop is being cancelled: nothing to tell the model.
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
            return LoopToolResult(call.call_id, f"tool call failed: {message}", is_error=True)

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
