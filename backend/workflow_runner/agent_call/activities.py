"""`CallAgentActivity`: starts an agent execution that completes the activity later, by token."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any, NoReturn

import grpc
import structlog
from ai.stigmer.agentic.agentexecution.v1 import spec_pb2
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from backend.common import contract, secret_placeholders
from backend.common.contract import handshake_id, token_hash
from backend.workflow_runner import metrics
from backend.workflow_runner.agent_call import cancelled_calls, convert, errors, secrets
from backend.workflow_runner.agent_call.client import DEFAULT_DEADLINE_SECONDS, StigmerClient
from backend.workflow_runner.agent_call.models import (
    CALL_AGENT_ACTIVITY,
    CANCEL_AGENT_CALL_ACTIVITY,
    CallAgentInput,
    CallAgentOutput,
    CancelAgentCallInput,
    CancelAgentCallOutput,
    SecretScope,
)

API_TOKEN_ENV_VAR = "STIGMER_API_TOKEN"

logger = structlog.get_logger(__name__)


class CallAgentActivity:
    """The activities of `call: agent`, bound to one Stigmer service."""

    def __init__(
        self,
        stigmer_endpoint: str,
        api_token: str | None = None,
        secret_resolver: secrets.SecretResolver = secrets.env_secret_resolver,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    ) -> None:
        self._client = StigmerClient(stigmer_endpoint, api_token, deadline_seconds)
        self._resolve_secret = secret_resolver

    async def close(self) -> None:
        await self._client.close()

    @activity.defn(name=CALL_AGENT_ACTIVITY)
    async def call_agent(self, call: CallAgentInput) -> CallAgentOutput:
        """Creates the execution with this activity's token, then leaves the activity open.

        The Stigmer service completes it (`CallAgentOutput` as a JSON object), fails it with the
        agent's error, or reports its cancellation; so this function never returns normally.
        """
        info = activity.info()
        token = info.task_token
        key = convert.idempotency_key(info)
        started = time.monotonic()
        log = logger.bind(
            handshake_id=handshake_id(key),
            workflow_id=info.workflow_id,
            run_id=info.workflow_run_id,
            activity_id=info.activity_id,
            attempt=info.attempt,
            token_hash=token_hash(token),
            agent=call.agent,
            task_path=call.task_path,
        )
        # Secrets first: a missing one fails the call before anything is created.
        scope = SecretScope(call.secret_seal, tuple(call.secret_names))
        names = secrets.referenced_secrets([call.message, *call.env.values()], scope)
        values = secrets.resolve_secrets(names, self._resolve_secret)
        # The message keeps placeholders, re-sealed with a seal of this call's own that travels
        # (encrypted) with the values: the service resolves those and nothing else.
        service_seal = secret_placeholders.new_seal()
        call = dataclasses.replace(
            call, message=secrets.reseal(call.message, scope, values, service_seal)
        )
        runtime_env = _runtime_env(call.env, scope, values, service_seal)

        execution = convert.agent_execution(
            call,
            agent_ref=convert.agent_reference(call),
            callback_token=token,
            key=key,
            caller=convert.caller_info(info),
            runtime_env=runtime_env,
        )
        try:
            created = await self._client.create_execution(execution)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                # The only thing a create by reference does not find is the agent.
                metrics.agent_calls.labels("agent_not_found").inc()
                log.warning("agent not found", scope=call.scope, org=call.org)
                raise ApplicationError(
                    f"agent {call.agent!r} not found (scope {call.scope or 'organization'}, "
                    f"org {call.org!r})",
                    {"agent": call.agent, "scope": call.scope, "org": call.org},
                    type=contract.AGENT_NOT_FOUND,
                    non_retryable=True,
                    category=ApplicationErrorCategory.BENIGN,
                ) from None
            _raise_grpc(log, error, "creating the agent execution")

        execution_id = created.metadata.id
        metrics.agent_calls.labels("created").inc()
        metrics.agent_call_create_seconds.observe(time.monotonic() - started)
        log.info(
            "agent execution created; waiting for its callback",
            execution_id=execution_id,
            agent_id=created.spec.agent_id,
            secrets=len(values),
        )
        # Recorded with the activity, so that a caller whose activity timed out (service lost)
        # still knows which execution to cancel.
        activity.heartbeat({"execution_id": execution_id})
        activity.raise_complete_async()

    @activity.defn(name=CANCEL_AGENT_CALL_ACTIVITY)
    async def cancel_agent_call(self, request: CancelAgentCallInput) -> CancelAgentCallOutput:
        """Cancels an execution whose caller went away; tolerates one that has already ended.
        Without an execution id, those of the workflow's calls it asked to cancel."""
        if request.execution_id:
            return await self._cancel(request.execution_id, request.reason)
        found = await cancelled_calls.cancel_requested_executions(
            activity.client(), activity.info()
        )
        results = [await self._cancel(execution_id, request.reason) for execution_id in found]
        return CancelAgentCallOutput(cancelled=any(result.cancelled for result in results))

    async def _cancel(self, execution_id: str, reason: str) -> CancelAgentCallOutput:
        log = logger.bind(execution_id=execution_id)
        try:
            await self._client.cancel_execution(execution_id, reason)
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                log.info("agent execution already ended", grpc_status=error.code().name)
                return CancelAgentCallOutput(cancelled=False)
            _raise_grpc(log, error, "cancelling the agent execution")
        metrics.agent_calls_cancelled.inc()
        log.info("agent execution cancelled")
        return CancelAgentCallOutput(cancelled=True)


def _runtime_env(
    env: dict[str, str], scope: SecretScope, values: dict[str, str], service_seal: str
) -> dict[str, spec_pb2.ExecutionValue]:
    """Env entries (secret when they hold a placeholder) plus every referenced secret by name,
    and the seal of the message's placeholders."""
    runtime_env = {
        name: spec_pb2.ExecutionValue(
            value=secrets.substitute(value, scope, values),
            is_secret=bool(secrets.referenced_secrets([value], scope)),
        )
        for name, value in env.items()
    }
    # The service substitutes the message's placeholders from these entries.
    for name, value in values.items():
        runtime_env[name] = spec_pb2.ExecutionValue(value=value, is_secret=True)
    if values:
        runtime_env[secret_placeholders.SEAL_ENV_NAME] = spec_pb2.ExecutionValue(
            value=service_seal, is_secret=True
        )
    return runtime_env


def _raise_grpc(log: Any, error: grpc.aio.AioRpcError, action: str) -> NoReturn:
    failure = errors.from_grpc_error(error, action)
    metrics.agent_calls.labels("error").inc()
    log.warning(
        f"{action} failed",
        grpc_status=error.code().name,
        retryable=not failure.non_retryable,
    )
    raise failure from None


def agent_call_activities(
    stigmer_endpoint: str, api_token: str | None = None
) -> list[Callable[..., Any]]:
    """The bound activity methods to register on a worker (API token from STIGMER_API_TOKEN)."""
    token = api_token if api_token is not None else os.environ.get(API_TOKEN_ENV_VAR) or None
    activities = CallAgentActivity(stigmer_endpoint, token)
    return [activities.call_agent, activities.cancel_agent_call]
