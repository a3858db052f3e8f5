"""Activities of the execution workflow: they load tokens and secrets from the database themselves."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.client import Client

from backend.stigmer_service import logs, states
from backend.stigmer_service.config import Settings
from backend.stigmer_service.errors import NotFound
from backend.stigmer_service.execution.agent_loop import AgentLoop
from backend.stigmer_service.execution.agent_run import AgentRun
from backend.stigmer_service.execution.delegation import Delegation
from backend.stigmer_service.execution.delivery import Deliveries
from backend.stigmer_service.execution.fields import log_fields
from backend.stigmer_service.execution.lifecycle import Lifecycle
from backend.stigmer_service.execution.models import (
    PHASE_DELETED,
    ApprovalTimeoutInput,
    CallToolInput,
    CancelChildrenInput,
    DelegateInput,
    DelegationEndedInput,
    DeliverCallbackInput,
    DeliverCallbackOutput,
    ExecutionRef,
    FinishInput,
    FinishOutput,
    LoopToolResult,
    ModelTurnInput,
    ModelTurnOutput,
    RunAgentOutput,
    ToolDecision,
)
from backend.stigmer_service.execution.workflow_ids import SESSION_TURN_SIGNAL, workflow_id
from backend.stigmer_service.metrics import ServiceMetrics
from backend.stigmer_service.store.records import Delivery, ExecutionRecord, StepRecord, TokenUsage
from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)


class ExecutionActivities:
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
        self.agent_run = AgentRun(store, settings, self.metrics)
        self.agent_loop = AgentLoop(store, settings, self.agent_run)
        self.deliveries = Deliveries(store, client, settings, self.metrics)
        self.delegation = Delegation(store, Lifecycle(store, client, settings))

    async def _deleted(self, execution_id: str, error: NotFound) -> None:
        """Re-raises `error` unless it is the execution that is gone (deleted: an API delete, or
        a start whose RPC failed), which ends its workflow cleanly instead of retrying for ever."""
        if await self.store.execution_version(execution_id) is not None:
            raise error
        log.info("execution no longer exists; nothing to do", execution_id=execution_id)

    @activity.defn
    async def run_agent(self, ref: ExecutionRef) -> RunAgentOutput:
        try:
            return await self._run_agent(ref)
        except NotFound as error:
            await self._deleted(ref.execution_id, error)
            return RunAgentOutput(phase=PHASE_DELETED, callback_state=states.CALLBACK_NOT_REQUESTED)

    async def _run_agent(self, ref: ExecutionRef) -> RunAgentOutput:
        """Marks the execution running, runs the model on the message (secrets are decrypted only
        here), records the answer and the end in one transaction, and calls the caller back
        at once: the agent's end reaches the caller without another activity or workflow task.
        The workflow retries a delivery that failed here."""
        execution, started = await self.store.start_run(ref.execution_id)
        fields = log_fields(execution)
        if execution.phase in states.TERMINAL_PHASES:
            # Cancelled before it ran, or a retry of an attempt that recorded the end but whose
            # completion never reached Temporal (the worker died): deliver what is recorded,
            # without running the agent a second time.
            log.info("execution already ended", phase=execution.phase, **fields)
            return await self._ended(await self.store.for_delivery(execution.id))
        if started:
            log.info("execution started", **fields)
        recorded = [m for m in execution.messages if m.role == states.ROLE_ASSISTANT]
        slug: str | None = None
        usage = TokenUsage()
        if recorded:
            # An answer recorded through UpdateAgentExecutionStatus: the agent has answered.
            log.info("model answer already recorded", attempt=activity.info().attempt, **fields)
            reply = recorded[-1].content
        else:
            answer = await self.agent_run.answer(execution, fields, fresh_session=ref.fresh_session)
            reply, slug, usage = answer.reply, answer.agent_slug, answer.usage
        # The one-call path of an agent without tools: it has no steps to read for the payload.
        return await self._complete(
            execution, reply, slug, append=not recorded, fields=fields, usage=usage, steps=[]
        )

    async def _complete(
        self,
        execution: ExecutionRecord,
        reply: str,
        slug: str | None,
        *,
        append: bool,
        fields: dict[str, str],
        usage: TokenUsage,
        steps: list[StepRecord] | None = None,
    ) -> RunAgentOutput:
        """Records the answer, what its model call used, and the end, then makes the first
        callback attempt."""
        ended = await self.store.complete(
            execution.id, reply, append=append, usage=usage, before=execution
        )
        # None: another writer (a cancel) ended it first; its end is what the caller gets.
        wrote = ended is not None
        ended = ended or await self.store.for_delivery(execution.id)
        log.info(
            "execution ended",
            phase=ended.execution.phase,
            error_type=ended.execution.error_type,
            overwritten=not wrote,
            **fields,
        )
        return await self._ended(ended, agent_slug=slug, steps=steps)

    async def _ended(
        self,
        ended: Delivery,
        *,
        agent_slug: str | None = None,
        steps: list[StepRecord] | None = None,
    ) -> RunAgentOutput:
        """The first callback attempt of a recorded end (`agent_slug`, `steps`: when known)."""
        state = await self.deliveries.first_attempt(
            ended, attempt=activity.info().attempt, agent_slug=agent_slug, steps=steps
        )
        await self._wake_session(ended.execution)
        return RunAgentOutput(phase=ended.execution.phase, callback_state=state)

    async def _wake_session(self, execution: ExecutionRecord) -> None:
        """Tells the next execution of the session, if one waits, that this one has ended."""
        following = await self.store.session_next(execution)
        if following is None:
            return
        try:
            await self.client.get_workflow_handle(workflow_id(following)).signal(
                SESSION_TURN_SIGNAL
            )
        except Exception as error:  # It looks again on its own timer.
            log.warning(
                "could not wake the session's next execution",
                error=type(error).__name__,
                next_execution_id=following,
                **log_fields(execution),
            )

    @activity.defn
    async def session_ahead(self, ref: ExecutionRef) -> str:
        """The earliest earlier execution of the session that has not ended ("" when none:
        this one may run)."""
        try:
            execution = await self.store.get_execution(ref.execution_id)
        except NotFound:
            return ""  # Deleted: the run finds it gone and ends.
        return await self.store.session_ahead(execution) or ""

    @activity.defn
    async def model_turn(self, request: ModelTurnInput) -> ModelTurnOutput:
        """One model turn of an agent with tools: the tool calls to make, or the end recorded
        and delivered as `run_agent` does (the workflow retries a failed delivery)."""
        try:
            return await self._model_turn(request)
        except NotFound as error:
            await self._deleted(request.execution_id, error)
            gone = RunAgentOutput(phase=PHASE_DELETED, callback_state=states.CALLBACK_NOT_REQUESTED)
            return ModelTurnOutput([], ended=gone)

    async def _model_turn(self, request: ModelTurnInput) -> ModelTurnOutput:
        started = await self.store.mark_running(request.execution_id)
        execution = await self.store.get_execution(request.execution_id)
        fields = log_fields(execution)
        if execution.phase in states.TERMINAL_PHASES:
            log.info("execution already ended", phase=execution.phase, **fields)
            ended = await self._ended(await self.store.for_delivery(execution.id))
            return ModelTurnOutput([], ended=ended)
        if started:
            log.info("execution started", **fields)
        reply = await self.agent_loop.turn(
            execution, fields, request.turns, request.next_index, request.approval
        )
        if reply.calls:
            await self.store.add_usage(execution.id, reply.usage)
            return ModelTurnOutput(reply.calls, reply.text, reply.next_index)
        ended = await self._complete(
            execution, reply.text, reply.agent_slug, append=True, fields=fields, usage=reply.usage
        )
        return ModelTurnOutput([], reply.text, reply.next_index, ended=ended)

    @activity.defn
    async def call_tool(self, request: CallToolInput) -> LoopToolResult:
        """One tool call of an agent with tools (see AgentLoop.call_tool)."""
        return await self.agent_loop.call_tool(request)

    @activity.defn
    async def delegate(self, request: DelegateInput) -> dict[str, Any]:
        """Hands this activity's task token to a sub-agent's execution, which completes it
        when it ends (see Delegation.delegate)."""
        return await self.delegation.delegate(request)

    @activity.defn
    async def delegation_ended(self, request: DelegationEndedInput) -> None:
        await self.delegation.ended(request)

    @activity.defn
    async def cancel_children(self, request: CancelChildrenInput) -> int:
        """Cancels the execution's running sub-agent executions (it is ending without them)."""
        return await self.delegation.cancel_children(request.execution_id, request.reason)

    @activity.defn
    async def approval_timed_out(self, request: ApprovalTimeoutInput) -> ToolDecision:
        """Records that nobody decided on a gated call in time, unless a decision is recorded
        first (its signal crossed the timer, or was lost): then that decision stands."""
        return await self.agent_loop.approval_timed_out(request)

    @activity.defn
    async def finish(self, outcome: FinishInput) -> FinishOutput:
        try:
            return await self._finish(outcome)
        except NotFound as error:
            await self._deleted(outcome.execution_id, error)
            return FinishOutput(phase=PHASE_DELETED)

    async def _finish(self, outcome: FinishInput) -> FinishOutput:
        wrote = await self.store.finish(
            outcome.execution_id,
            phase=outcome.phase,
            output=outcome.output,
            error_type=outcome.error_type,
            error_message=outcome.error_message,
            error_retryable=outcome.error_retryable,
        )
        execution = await self.store.get_execution(outcome.execution_id)
        await self._wake_session(execution)
        log.info(
            "execution ended",
            phase=execution.phase,
            error_type=execution.error_type,
            overwritten=not wrote,
            **log_fields(execution),
        )
        return FinishOutput(phase=execution.phase)

    @activity.defn
    async def deliver_callback(self, request: DeliverCallbackInput) -> DeliverCallbackOutput:
        """Completes, fails or cancels the caller's activity once; NOT_FOUND means already closed.
        A failed attempt is retried by Temporal, up to `max_attempts`."""
        state = await self.deliveries.retry(
            request.execution_id, attempt=activity.info().attempt, max_attempts=request.max_attempts
        )
        return DeliverCallbackOutput(state)

    def all(self) -> list[Any]:
        return [
            self.run_agent,
            self.session_ahead,
            self.model_turn,
            self.call_tool,
            self.delegate,
            self.delegation_ended,
            self.cancel_children,
            self.approval_timed_out,
            self.finish,
            self.deliver_callback,
        ]
