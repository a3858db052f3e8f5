"""Maps protobuf messages to store records and back; the only place both meet."""

from __future__ import annotations

import datetime
from typing import Any

from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agent.v1 import status_pb2 as agent_status_pb2
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, spec_pb2, status_pb2
from ai.stigmer.commons.apiresource import audit_pb2, metadata_pb2
from google.protobuf import duration_pb2, json_format, timestamp_pb2

from backend.stigmer_service.placeholders import MASK
from backend.stigmer_service.store.records import (
    AgentRecord,
    CallerRef,
    ExecutionRecord,
    StepRecord,
)

API_VERSION = "agentic.stigmer.ai/v1"


def _ts(value: datetime.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _audit(created: datetime.datetime, updated: datetime.datetime) -> audit_pb2.ApiResourceAudit:
    return audit_pb2.ApiResourceAudit(created_at=_ts(created), updated_at=_ts(updated))


def to_json(message: Any) -> dict[str, Any]:
    """Proto JSON (camelCase names), without default values."""
    return json_format.MessageToDict(message)


def agent_spec_from_json(spec: dict[str, Any]) -> agent_spec_pb2.AgentSpec:
    return json_format.ParseDict(spec, agent_spec_pb2.AgentSpec())


def agent_to_proto(record: AgentRecord) -> agent_api_pb2.Agent:
    audit = _audit(record.created_at, record.updated_at)
    return agent_api_pb2.Agent(
        api_version=API_VERSION,
        kind="Agent",
        metadata=metadata_pb2.ApiResourceMetadata(
            id=record.id,
            name=record.name,
            slug=record.slug,
            org=record.org,
            labels=record.labels,
            annotations=record.annotations,
            version=record.version,
            audit=audit,
        ),
        spec=agent_spec_from_json(record.spec),
        status=agent_status_pb2.AgentStatus(
            execution_count=record.execution_count,
            last_execution_at=_ts(record.last_execution_at),
            audit=audit,
        ),
    )


def caller_to_proto(caller: CallerRef) -> spec_pb2.CallerInfo:
    info = spec_pb2.CallerInfo(
        workflow_id=caller.workflow_id,
        run_id=caller.run_id,
        activity_id=caller.activity_id,
        namespace=caller.namespace,
        task_queue=caller.task_queue,
    )
    if caller.heartbeat_timeout:
        info.heartbeat_timeout.FromTimedelta(datetime.timedelta(seconds=caller.heartbeat_timeout))
    return info


def _step(step: StepRecord) -> status_pb2.AgentStep:
    duration = None
    if step.duration is not None:
        duration = duration_pb2.Duration()
        duration.FromTimedelta(step.duration)
    return status_pb2.AgentStep(
        index=step.index,
        kind=step.kind,  # type: ignore[arg-type]
        tool_server=step.tool_server,
        tool_name=step.tool_name,
        arguments_json=step.arguments,
        result=step.result,
        error=step.error,
        duration=duration,
        started_at=_ts(step.started_at),
        approval=(
            status_pb2.StepApproval(
                state=step.approval,  # type: ignore[arg-type]
                decided_by=step.approval_by,
                reason=step.approval_reason,
                decided_at=_ts(step.approval_at),
            )
            if step.approval
            else None
        ),
        sub_execution_id=step.sub_execution_id,
    )


def execution_to_proto(record: ExecutionRecord) -> api_pb2.AgentExecution:
    """The read view: no callback token, secret values as "***"."""
    audit = _audit(record.created_at, record.updated_at)
    spec = spec_pb2.AgentExecutionSpec(
        session_id=record.session_id,
        agent_id=record.agent_id,
        message=record.message,
        execution_config=json_format.ParseDict(record.config, spec_pb2.ExecutionConfig()),
        runtime_env={
            name: spec_pb2.ExecutionValue(
                value=MASK if env.is_secret else env.value, is_secret=env.is_secret
            )
            for name, env in record.runtime_env.items()
        },
        idempotency_key=record.idempotency_key,
        caller=caller_to_proto(record.caller),
    )
    error = (
        status_pb2.ExecutionError(
            type=record.error_type,
            message=record.error_message,
            retryable=record.error_retryable,
        )
        if record.error_type
        else None
    )
    status = status_pb2.AgentExecutionStatus(
        phase=record.phase,  # type: ignore[arg-type]
        messages=[
            status_pb2.AgentMessage(
                role=m.role,  # type: ignore[arg-type]
                content=m.content,
                created_at=_ts(m.created_at),
            )
            for m in record.messages
        ],
        output=record.output,
        error=error,
        started_at=_ts(record.started_at),
        completed_at=_ts(record.completed_at),
        callback=status_pb2.CallbackStatus(
            token_present=record.token_present,
            token_hash=record.token_hash,
            state=record.callback_state,  # type: ignore[arg-type]
            outcome=record.callback_outcome,  # type: ignore[arg-type]
            attempts=record.callback_attempts,
            last_error=record.callback_last_error,
            delivered_at=_ts(record.callback_delivered_at),
        ),
        audit=audit,
        steps=[_step(step) for step in record.steps],
        parent_execution_id=record.parent_execution_id,
        usage=status_pb2.TokenUsage(
            input_tokens=record.usage.input_tokens,
            output_tokens=record.usage.output_tokens,
            model_calls=record.usage.model_calls,
        ),
    )
    return api_pb2.AgentExecution(
        api_version=API_VERSION,
        kind="AgentExecution",
        metadata=metadata_pb2.ApiResourceMetadata(
            id=record.id,
            name=record.name,
            org=record.org,
            labels=record.labels,
            version=record.version,
            audit=audit,
        ),
        spec=spec,
        status=status,
    )
