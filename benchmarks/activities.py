"""The baseline activities: the polling design the handshake replaces, and Temporal's bare floor."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    command_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    spec_pb2,
    status_pb2,
)
from ai.stigmer.commons.apiresource import metadata_pb2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from benchmarks.models import (
    BARE_ASYNC_ACTIVITY,
    POLL_AGENT_CALL_ACTIVITY,
    POLL_INTERVAL_SECONDS,
    PollInput,
)

DEADLINE_SECONDS = 15.0
_TERMINAL = (
    status_pb2.EXECUTION_PHASE_COMPLETED,
    status_pb2.EXECUTION_PHASE_FAILED,
    status_pb2.EXECUTION_PHASE_CANCELLED,
)


class BaselineActivities:
    """One gRPC channel per agent-side endpoint, opened on the worker's event loop."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, endpoint: str) -> grpc.aio.Channel:
        if endpoint not in self._channels:
            self._channels[endpoint] = grpc.aio.insecure_channel(endpoint)
        return self._channels[endpoint]

    async def _create(self, request: PollInput, token: bytes) -> api_pb2.AgentExecution:
        stub = command_pb2_grpc.AgentExecutionCommandServiceStub(self._channel(request.endpoint))
        info = activity.info()
        execution = api_pb2.AgentExecution(
            metadata=metadata_pb2.ApiResourceMetadata(org=request.call.org),
            spec=spec_pb2.AgentExecutionSpec(
                agent_id=request.call.agent,
                message=request.call.message,
                callback_token=token,
                idempotency_key=f"{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}",
            ),
        )
        return await stub.CreateAgentExecution(
            command_pb2.CreateAgentExecutionRequest(execution=execution), timeout=DEADLINE_SECONDS
        )

    @activity.defn(name=POLL_AGENT_CALL_ACTIVITY)
    async def poll_agent_call(self, request: PollInput) -> dict[str, Any]:
        """Creates the execution without a token, then holds its slot polling until it ends."""
        created = await self._create(request, b"")
        execution_id = created.metadata.id
        query = query_pb2_grpc.AgentExecutionQueryServiceStub(self._channel(request.endpoint))
        polls = 0
        while True:
            activity.heartbeat({"execution_id": execution_id, "polls": polls})
            await asyncio.sleep(POLL_INTERVAL_SECONDS)
            polls += 1
            execution = await query.GetAgentExecution(
                query_pb2.GetAgentExecutionRequest(id=execution_id), timeout=DEADLINE_SECONDS
            )
            if execution.status.phase in _TERMINAL:
                break
        if execution.status.phase != status_pb2.EXECUTION_PHASE_COMPLETED:
            raise ApplicationError(
                f"agent execution {execution_id} ended in phase {execution.status.phase}",
                type="AgentExecutionFailed",
                non_retryable=True,
            )
        return {"execution_id": execution_id, "output": execution.status.output, "polls": polls}

    @activity.defn(name=BARE_ASYNC_ACTIVITY)
    async def bare_async(self, request: PollInput) -> dict[str, Any]:
        """Hands its task token to the agent side and leaves the activity open, nothing more."""
        await self._create(request, activity.info().task_token)
        activity.raise_complete_async()

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
