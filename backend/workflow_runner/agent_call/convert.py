"""Maps agent-call dataclasses to the Stigmer API's protobuf messages and back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ai.stigmer.agentic.agentexecution.v1 import api_pb2, spec_pb2
from ai.stigmer.commons.apiresource import metadata_pb2, reference_pb2
from google.protobuf import duration_pb2
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from backend.common import contract
from backend.workflow_runner.agent_call.models import CallAgentInput, CallAgentOutput

# The execution timeout when the task sets none; sent explicitly so that the service and the
# activity's own timeout agree on it.
DEFAULT_TIMEOUT_SECONDS = 600.0

_SCOPES = {
    "platform": reference_pb2.API_RESOURCE_OWNER_SCOPE_PLATFORM,
    "organization": reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION,
    "identity_account": reference_pb2.API_RESOURCE_OWNER_SCOPE_IDENTITY_ACCOUNT,
}


def owner_scope(scope: str) -> reference_pb2.ApiResourceOwnerScope.ValueType:
    """The API's owner scope for a task's `scope` (organization when empty)."""
    key = (scope or "organization").lower().removeprefix("api_resource_owner_scope_")
    try:
        return _SCOPES[key.replace("-", "_")]
    except KeyError:
        raise ApplicationError(
            f"unknown agent scope {scope!r}; expected one of {', '.join(_SCOPES)}",
            type=contract.INVALID_AGENT_CALL,
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        ) from None


def agent_reference(call: CallAgentInput) -> reference_pb2.ApiResourceReference:
    scope = owner_scope(call.scope)
    return reference_pb2.ApiResourceReference(
        scope=scope,
        # Only organization-scoped references carry an org.
        org=call.org if scope == reference_pb2.API_RESOURCE_OWNER_SCOPE_ORGANIZATION else "",
        kind=reference_pb2.API_RESOURCE_KIND_AGENT,
        slug=call.agent,
    )


def timeout_seconds(call: CallAgentInput) -> float:
    return call.timeout_seconds if call.timeout_seconds else DEFAULT_TIMEOUT_SECONDS


def caller_info(info: activity.Info) -> spec_pb2.CallerInfo:
    caller = spec_pb2.CallerInfo(
        workflow_id=info.workflow_id or "",
        run_id=info.workflow_run_id or "",
        activity_id=info.activity_id,
        namespace=info.namespace,
        task_queue=info.task_queue,
    )
    # The service heartbeats the activity within a quarter of it, and no more often than it
    # must: a longer timeout costs Temporal fewer RPCs per waiting call.
    if info.heartbeat_timeout:
        caller.heartbeat_timeout.FromTimedelta(info.heartbeat_timeout)
    return caller


def idempotency_key(info: activity.Info) -> str:
    """One key per activity of one run, shared by its retried attempts (no attempt number)."""
    return f"{info.workflow_id or ''}/{info.workflow_run_id or ''}/{info.activity_id}"


def execution_config(call: CallAgentInput) -> spec_pb2.ExecutionConfig:
    config = spec_pb2.ExecutionConfig(
        model_name=call.model,
        timeout=duration_pb2.Duration(),
    )
    config.timeout.FromNanoseconds(round(timeout_seconds(call) * 1e9))
    if call.temperature is not None:
        config.temperature = call.temperature
    return config


def agent_execution(
    call: CallAgentInput,
    *,
    agent_ref: reference_pb2.ApiResourceReference,
    callback_token: bytes,
    key: str,
    caller: spec_pb2.CallerInfo,
    runtime_env: Mapping[str, spec_pb2.ExecutionValue],
) -> api_pb2.AgentExecution:
    """The execution to create: the message keeps its placeholders, values travel in runtime_env.
    The agent goes by its reference: the service resolves it within the create (one RPC)."""
    return api_pb2.AgentExecution(
        metadata=metadata_pb2.ApiResourceMetadata(org=call.org),
        spec=spec_pb2.AgentExecutionSpec(
            session_id=call.session_id,
            agent_ref=agent_ref,
            message=call.message,
            execution_config=execution_config(call),
            runtime_env=dict(runtime_env),
            callback_token=callback_token,
            idempotency_key=key,
            caller=caller,
        ),
    )


def call_output(result: Mapping[str, Any]) -> CallAgentOutput:
    """The typed view of the JSON object the Stigmer service completes the activity with."""
    return CallAgentOutput(
        execution_id=str(result.get("execution_id", "")),
        output=str(result.get("output", "")),
        agent=str(result.get("agent", "")),
        agent_id=str(result.get("agent_id", "")),
        session_id=str(result.get("session_id", "")),
        # Absent from an older service's payload.
        steps=[dict(step) for step in result.get("steps") or () if isinstance(step, Mapping)],
    )
