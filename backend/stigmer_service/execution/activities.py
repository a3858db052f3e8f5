"""Activities of the execution workflow: they load tokens and secrets from the database themselves."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from opentelemetry.trace import StatusCode
from temporalio import activity
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import AsyncActivityCancelledError, Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from backend.common import tracing
from backend.stigmer_service import logs, placeholders, states
from backend.stigmer_service.config import Settings
from backend.stigmer_service.errors import NotFound
from backend.stigmer_service.execution import callback
from backend.stigmer_service.execution.models import (
    CallerHeartbeatOutput,
    DeliverCallbackInput,
    DeliverCallbackOutput,
    ExecutionRef,
    FinishInput,
    FinishOutput,
    MarkRunningOutput,
    RunAgentOutput,
)
from backend.stigmer_service.metrics import ServiceMetrics
from backend.stigmer_service.providers import registry
from backend.stigmer_service.providers.base import ChatMessage, ModelCallError, ModelRequest
from backend.stigmer_service.store.records import ExecutionRecord
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
    async def mark_running(self, ref: ExecutionRef) -> MarkRunningOutput:
        started = await self.store.mark_running(ref.execution_id)
        execution = await self.store.get_execution(ref.execution_id)
        # A retry finds RUNNING when an earlier attempt wrote it but its completion was lost (the
        # worker was killed): the execution runs, it was not cancelled before it ran.
        started = started or execution.phase == states.PHASE_RUNNING
        log.info(
            "execution started" if started else "execution not pending", **_log_fields(execution)
        )
        return MarkRunningOutput(started=started, has_token=execution.token_present)

    @activity.defn
    async def run_agent(self, ref: ExecutionRef) -> RunAgentOutput:
        """Runs the model on the message; secrets are decrypted only here."""
        execution = await self.store.get_execution(ref.execution_id)
        fields = _log_fields(execution)
        recorded = [m for m in execution.messages if m.role == states.ROLE_ASSISTANT]
        if recorded:
            # An earlier attempt got the model's answer and recorded it, but its completion never
            # reached Temporal (the worker or the server died in between): the agent has run, so
            # return its answer rather than running it a second time.
            log.info("model answer already recorded", attempt=activity.info().attempt, **fields)
            return RunAgentOutput(output=recorded[-1].content)
        try:
            agent = await self.store.get_agent(execution.agent_id)
        except NotFound as error:
            raise ApplicationError(
                str(error), type=states.ERROR_AGENT_NOT_FOUND, non_retryable=True
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
                    message, type=error.error_type, non_retryable=not error.retryable
                ) from None
            finally:
                self.metrics.model_call.labels(provider_name).observe(time.monotonic() - started)
        reply = placeholders.mask(reply, secret_values)
        await self.store.append_message(execution.id, states.ROLE_ASSISTANT, reply)
        return RunAgentOutput(output=reply)

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
    async def caller_heartbeat(self, ref: ExecutionRef) -> CallerHeartbeatOutput:
        """Keeps the caller's activity alive; returns when the caller was cancelled or closed."""
        while True:
            token, _ = await self.store.load_token(ref.execution_id)
            if token:
                try:
                    await self.client.get_async_activity_handle(task_token=token).heartbeat()
                except AsyncActivityCancelledError:
                    return CallerHeartbeatOutput(True, "the caller's activity was cancelled")
                except RPCError as error:
                    if error.status == RPCStatusCode.NOT_FOUND and await self._caller_closed(
                        ref.execution_id
                    ):
                        return CallerHeartbeatOutput(True, "the caller's workflow has closed")
                    # Timed out or retried caller: a new attempt may still bring a new token.
                    execution = await self.store.get_execution(ref.execution_id)
                    log.info(
                        "caller heartbeat not delivered",
                        status=error.status.name if error.status else "",
                        **_log_fields(execution),
                    )
            activity.heartbeat()
            await asyncio.sleep(self.settings.caller_heartbeat_interval)

    async def _caller_closed(self, execution_id: str) -> bool:
        execution = await self.store.get_execution(execution_id)
        workflow_id = str(execution.caller.get("workflowId", ""))
        namespace = str(execution.caller.get("namespace", ""))
        if not workflow_id or (namespace and namespace != self.client.namespace):
            return False
        run_id = str(execution.caller.get("runId", "")) or None
        try:
            description = await self.client.get_workflow_handle(
                workflow_id, run_id=run_id
            ).describe()
        except RPCError:
            return False
        return bool(
            description.raw_description.workflow_execution_info.status
            != WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
        )

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
        """Completes, fails or cancels the caller's activity once; NOT_FOUND means already closed."""
        token, hashed = await self.store.load_token(request.execution_id)
        if not token:
            return DeliverCallbackOutput(states.CALLBACK_NOT_REQUESTED)
        execution = await self.store.get_execution(request.execution_id)
        fields = _log_fields(execution) | {"token_hash": hashed}
        attempt = activity.info().attempt
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
                    )
                )
            except RPCError as error:
                if error.status == RPCStatusCode.NOT_FOUND:
                    await self.store.record_callback(
                        execution.id, for_token_hash=hashed, state=states.CALLBACK_ALREADY_CLOSED
                    )
                    self.metrics.callback_already_closed()
                    span.set_attribute("stigmer.callback.outcome", "already_closed")
                    log.info("callback found the caller already closed", **fields)
                    return DeliverCallbackOutput(states.CALLBACK_ALREADY_CLOSED)
                span.set_attribute("stigmer.callback.outcome", "error")
                span.set_status(StatusCode.ERROR, type(error).__name__)
                return await self._failed_attempt(execution.id, hashed, request, error, fields)
            except Exception as error:
                span.set_attribute("stigmer.callback.outcome", "error")
                span.set_status(StatusCode.ERROR, type(error).__name__)
                return await self._failed_attempt(execution.id, hashed, request, error, fields)
            await self.store.record_callback(
                execution.id, for_token_hash=hashed, state=states.CALLBACK_DELIVERED
            )
            self.metrics.callback_delivered(execution.phase, execution.completed_at)
            outcome = states.OUTCOME_NAMES.get(execution.phase, "")
            span.set_attribute("stigmer.callback.outcome", outcome)
        log.info("callback delivered", outcome=outcome, **fields)
        return DeliverCallbackOutput(states.CALLBACK_DELIVERED)

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
        request: DeliverCallbackInput,
        error: Exception,
        fields: dict[str, str],
    ) -> DeliverCallbackOutput:
        description = f"{type(error).__name__}: {error}"
        last = activity.info().attempt >= request.max_attempts
        state = states.CALLBACK_FAILED if last else states.CALLBACK_WAITING
        await self.store.record_callback(
            execution_id, for_token_hash=hashed, state=state, last_error=description
        )
        self.metrics.callback_error()
        log.warning("callback attempt failed", error=description, final=last, **fields)
        if last:
            return DeliverCallbackOutput(states.CALLBACK_FAILED)
        raise error

    def all(self) -> list[Any]:
        return [
            self.mark_running,
            self.run_agent,
            self.caller_heartbeat,
            self.finish,
            self.deliver_callback,
        ]
