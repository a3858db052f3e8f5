"""Activities of the execution workflow: they load tokens and secrets from the database themselves."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from opentelemetry.trace import StatusCode
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.service import RPCError, RPCStatusCode

from backend.common import tracing
from backend.stigmer_service import logs, placeholders, states
from backend.stigmer_service.config import Settings
from backend.stigmer_service.errors import NotFound
from backend.stigmer_service.execution import callback
from backend.stigmer_service.execution.models import (
    DeliverCallbackInput,
    DeliverCallbackOutput,
    ExecutionRef,
    FinishInput,
    FinishOutput,
    RunAgentOutput,
)
from backend.stigmer_service.metrics import ServiceMetrics
from backend.stigmer_service.providers import registry
from backend.stigmer_service.providers.base import ChatMessage, ModelCallError, ModelRequest
from backend.stigmer_service.store.records import Delivery, ExecutionRecord
from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)

T = TypeVar("T")

_ROLE_NAMES = {states.ROLE_USER: "user", states.ROLE_ASSISTANT: "assistant"}


def _seconds(duration: Any, default: float) -> float:
    """A proto-JSON Duration ("1.5s") in seconds."""
    if isinstance(duration, str) and duration.endswith("s"):
        return float(duration[:-1])
    return default


def _log_fields(execution: ExecutionRecord) -> dict[str, str]:
    return {
        "execution_id": execution.id,
        "workflow_id": str(execution.caller.get("workflowId", "")),
        "activity_id": str(execution.caller.get("activityId", "")),
        "token_hash": execution.token_hash,
        "handshake_id": logs.handshake_id(execution.idempotency_key),
    }


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

    @activity.defn
    async def run_agent(self, ref: ExecutionRef) -> RunAgentOutput:
        """Marks the execution running, runs the model on the message (secrets are decrypted only
        here), records the answer and the end in one transaction, and calls the caller back
        at once: the agent's end reaches the caller without another activity or workflow task.
        The workflow retries a delivery that failed here."""
        started = await self.store.mark_running(ref.execution_id)
        execution = await self.store.get_execution(ref.execution_id)
        fields = _log_fields(execution)
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
        if recorded:
            # An answer recorded through UpdateAgentExecutionStatus: the agent has answered.
            log.info("model answer already recorded", attempt=activity.info().attempt, **fields)
            reply = recorded[-1].content
        else:
            reply, slug = await self._model_answer(execution, fields)
        ended = await self.store.complete(execution.id, reply, append=not recorded)
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
        return await self._ended(ended, agent_slug=slug)

    async def _ended(self, ended: Delivery, *, agent_slug: str | None = None) -> RunAgentOutput:
        """Makes the first delivery attempt of a recorded end."""
        execution, token, hashed = ended.execution, ended.token, ended.token_hash
        state = execution.callback_state
        if state == states.CALLBACK_WAITING and token:
            # The first of the `callback_max_attempts` delivery attempts; the workflow makes
            # the others.
            state, _ = await self._deliver_to(
                execution,
                token,
                hashed,
                attempt=activity.info().attempt,
                last_attempt=self.settings.callback_max_attempts <= 1,
                agent_slug=agent_slug,
            )
        return RunAgentOutput(phase=execution.phase, callback_state=state)

    async def _model_answer(
        self, execution: ExecutionRecord, fields: dict[str, str]
    ) -> tuple[str, str]:
        """The model's answer (secrets masked) and the agent's slug."""
        try:
            agent = await self.store.get_agent(execution.agent_id)
        except NotFound as error:
            raise ApplicationError(
                str(error),
                type=states.ERROR_AGENT_NOT_FOUND,
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            ) from None
        env, secrets = self.store.decrypt_env(execution)
        secret_values = list(secrets.values())
        options: dict[str, Any] = agent.spec.get("modelOptions", {})
        model = str(execution.config.get("modelName") or agent.spec.get("model") or "")
        chat: list[ChatMessage] = []
        if instructions := agent.spec.get("instructions"):
            chat.append(ChatMessage("system", str(instructions)))
        for earlier in await self.store.session_history(execution):
            chat.append(ChatMessage(_ROLE_NAMES[earlier.role], earlier.content))
        chat.append(ChatMessage("user", placeholders.substitute(execution.message, secrets)))
        temperature = execution.config.get("temperature", options.get("temperature"))
        model = model or registry.DEFAULT_MODEL
        provider_name = model.partition("/")[0]
        attempt = activity.info().attempt
        started = time.monotonic()
        with tracing.tracer(__name__).start_as_current_span(
            "model call",
            attributes={
                "stigmer.model.provider": provider_name,
                "stigmer.model": model,
                "stigmer.execution_id": execution.id,
                "stigmer.handshake_id": fields["handshake_id"],
                "stigmer.attempt": attempt,
            },
        ) as span:
            try:
                provider, name = registry.resolve(model)
                request = ModelRequest(
                    agent_slug=agent.slug,
                    model=name,
                    messages=chat,
                    env=env,
                    secret_values=secret_values,
                    attempt=attempt,
                    temperature=None if temperature is None else float(temperature),
                    max_tokens=options.get("maxTokens"),
                    top_p=options.get("topP"),
                    timeout=_seconds(options.get("timeout"), 60.0),
                    base_url=str(options.get("baseUrl", "")),
                    api_key_env=str(options.get("apiKeyEnv", "")),
                )
                log.info("model call", model=model, attempt=attempt, **fields)
                reply = await self._heartbeating(provider.complete(request))
            except ModelCallError as error:
                message = placeholders.mask(str(error), secret_values)
                self.metrics.model_errors.labels(provider_name, error.error_type).inc()
                span.set_attribute("stigmer.error_type", error.error_type)
                span.set_status(StatusCode.ERROR, error.error_type)
                log.warning(
                    "model call failed", error_type=error.error_type, error=message, **fields
                )
                raise ApplicationError(
                    message,
                    type=error.error_type,
                    non_retryable=not error.retryable,
                    # Expected: our own warning above is its one log line; no traceback.
                    category=ApplicationErrorCategory.BENIGN,
                ) from None
            finally:
                self.metrics.model_call.labels(provider_name).observe(time.monotonic() - started)
        return placeholders.mask(reply, secret_values), agent.slug

    async def _heartbeating(self, call: Awaitable[T]) -> T:
        """Awaits `call`, heartbeating meanwhile so that a dead worker is noticed quickly."""
        task: asyncio.Future[T] = asyncio.ensure_future(call)
        try:
            while True:
                done, _ = await asyncio.wait(
                    {task}, timeout=self.settings.activity_heartbeat_interval
                )
                if done:
                    return task.result()
                activity.heartbeat()
        finally:
            # Cancelled (the execution timed out or was cancelled): stop the call too.
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    @activity.defn
    async def finish(self, outcome: FinishInput) -> FinishOutput:
        wrote = await self.store.finish(
            outcome.execution_id,
            phase=outcome.phase,
            output=outcome.output,
            error_type=outcome.error_type,
            error_message=outcome.error_message,
            error_retryable=outcome.error_retryable,
        )
        execution = await self.store.get_execution(outcome.execution_id)
        log.info(
            "execution ended",
            phase=execution.phase,
            error_type=execution.error_type,
            overwritten=not wrote,
            **_log_fields(execution),
        )
        return FinishOutput(phase=execution.phase)

    @activity.defn
    async def deliver_callback(self, request: DeliverCallbackInput) -> DeliverCallbackOutput:
        """Completes, fails or cancels the caller's activity once; NOT_FOUND means already closed.
        A failed attempt is retried by Temporal, up to `max_attempts`."""
        attempt = activity.info().attempt
        state, error = await self._deliver(
            request.execution_id, attempt=attempt, last_attempt=attempt >= request.max_attempts
        )
        if error is not None and state != states.CALLBACK_FAILED:
            raise error
        return DeliverCallbackOutput(state)

    async def _deliver(
        self, execution_id: str, *, attempt: int, last_attempt: bool = False
    ) -> tuple[int, Exception | None]:
        """One delivery attempt to the current token: the callback state it leaves, and the
        error when it failed (WAITING, or FAILED on the last attempt)."""
        delivery = await self.store.for_delivery(execution_id)
        execution, token, hashed = delivery.execution, delivery.token, delivery.token_hash
        if not token:
            return states.CALLBACK_NOT_REQUESTED, None
        if execution.callback_state in (states.CALLBACK_DELIVERED, states.CALLBACK_ALREADY_CLOSED):
            return execution.callback_state, None  # This token has had its callback.
        return await self._deliver_to(
            execution, token, hashed, attempt=attempt, last_attempt=last_attempt
        )

    async def _deliver_to(
        self,
        execution: ExecutionRecord,
        token: bytes,
        hashed: str,
        *,
        attempt: int,
        last_attempt: bool,
        agent_slug: str | None = None,
    ) -> tuple[int, Exception | None]:
        fields = _log_fields(execution) | {"token_hash": hashed}
        await self._test_hold(attempt, fields)
        with tracing.tracer(__name__).start_as_current_span(
            "callback",
            attributes={
                "stigmer.execution_id": execution.id,
                "stigmer.handshake_id": fields["handshake_id"],
                "stigmer.token_hash": hashed,
                "stigmer.phase": execution.phase,
                "stigmer.attempt": attempt,
            },
        ) as span:
            try:
                await self._heartbeating(
                    callback.send(
                        self.client,
                        self.store,
                        token,
                        execution,
                        self.settings.callback_rpc_timeout,
                        agent_slug,
                    )
                )
            except Exception as error:
                not_found = isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND
                if not_found and not await callback.landed(self.client, execution):
                    await self.store.record_callback(
                        execution.id, for_token_hash=hashed, state=states.CALLBACK_ALREADY_CLOSED
                    )
                    self.metrics.callback_already_closed()
                    span.set_attribute("stigmer.callback.outcome", "already_closed")
                    log.info("callback found the caller already closed", **fields)
                    return states.CALLBACK_ALREADY_CLOSED, None
                if not_found:
                    # An earlier attempt of ours closed it; only its answer was lost.
                    log.info("an earlier callback attempt had been delivered", **fields)
                else:
                    span.set_attribute("stigmer.callback.outcome", "error")
                    span.set_status(StatusCode.ERROR, type(error).__name__)
                    return await self._failed_attempt(
                        execution.id, hashed, error, last_attempt, fields
                    )
            await self.store.record_callback(
                execution.id, for_token_hash=hashed, state=states.CALLBACK_DELIVERED
            )
            self.metrics.callback_delivered(execution.phase, execution.completed_at)
            outcome = states.OUTCOME_NAMES.get(execution.phase, "")
            span.set_attribute("stigmer.callback.outcome", outcome)
        log.info("callback delivered", outcome=outcome, **fields)
        return states.CALLBACK_DELIVERED, None

    async def _test_hold(self, attempt: int, fields: dict[str, str]) -> None:
        """Test hook (STIGMER_TEST_CALLBACK_DELAY, unset in production): holds the first
        delivery attempt back, heartbeating, so a test can kill the service after the
        execution's end is written and before its callback is sent."""
        delay = self.settings.test_callback_delay
        if delay > 0 and attempt == 1:
            log.warning("callback held back by the test hook", seconds=delay, **fields)
            await self._heartbeating(asyncio.sleep(delay))

    async def _failed_attempt(
        self,
        execution_id: str,
        hashed: str,
        error: Exception,
        last: bool,
        fields: dict[str, str],
    ) -> tuple[int, Exception]:
        description = f"{type(error).__name__}: {error}"
        state = states.CALLBACK_FAILED if last else states.CALLBACK_WAITING
        await self.store.record_callback(
            execution_id, for_token_hash=hashed, state=state, last_error=description
        )
        self.metrics.callback_error()
        log.warning("callback attempt failed", error=description, final=last, **fields)
        return state, error

    def all(self) -> list[Any]:
        return [self.run_agent, self.finish, self.deliver_callback]
