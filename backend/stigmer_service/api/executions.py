"""Agent-execution command and query servicers; create starts the execution's workflow."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator
from typing import Any

import grpc
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    command_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)
from google.protobuf import empty_pb2
from temporalio.client import Client

from backend.stigmer_service import convert, identity, ids, logs, states
from backend.stigmer_service.api import approvals, paging, tenancy, validation
from backend.stigmer_service.api.watching import WatchHub, WatchLimitReached
from backend.stigmer_service.config import Settings
from backend.stigmer_service.errors import (
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)
from backend.stigmer_service.execution.lifecycle import Lifecycle
from backend.stigmer_service.store.records import (
    ExecutionFilter,
    ExecutionRecord,
    NewExecution,
    PageCursor,
)
from backend.stigmer_service.store.repository import Store

log = logs.get(__name__)


class Executions:
    """The operations both servicers share: the store, the Temporal client, the settings."""

    def __init__(self, store: Store, client: Client, settings: Settings) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.lifecycle = Lifecycle(store, client, settings)

    async def _new_execution(
        self, execution: api_pb2.AgentExecution
    ) -> tuple[NewExecution, dict[str, Any]]:
        """The validated request, and the spec of the agent it runs."""
        if not execution.HasField("spec"):
            raise InvalidArgument("spec", "is required")
        spec = execution.spec
        validation.required(spec.message, "spec.message")
        agent_id, session_id = spec.agent_id, spec.session_id
        referenced = None
        if not agent_id and spec.HasField("agent_ref"):
            # One RPC for a caller that knows the agent by name (the workflow runner).
            referenced = await tenancy.agent_by_reference(
                self.store, spec.agent_ref, "spec.agent_ref"
            )
        elif not agent_id and not session_id:
            raise InvalidArgument(
                "spec.agent_id",
                "must not be empty (or give spec.agent_ref, or name an existing spec.session_id)",
            )
        # The org and the agent, as far as the caller may see them (NotFound otherwise).
        placed = await tenancy.place_execution(
            self.store, execution.metadata.org, agent_id, session_id, referenced
        )
        agent_id = placed.agent_id
        config = spec.execution_config
        if config.HasField("timeout") and config.timeout.ToTimedelta() <= datetime.timedelta(0):
            raise InvalidArgument("spec.execution_config.timeout", "must be positive")
        validation.model(config.model_name, "spec.execution_config.model_name")
        for name in spec.runtime_env:
            if not name:
                raise InvalidArgument("spec.runtime_env", "keys must not be empty")
        new = NewExecution(
            org=placed.org,
            name=execution.metadata.name,
            labels=dict(execution.metadata.labels),
            agent_id=agent_id,
            session_id=session_id or ids.new_session_id(),
            new_session=not session_id,
            message=spec.message,
            config=convert.to_json(config),
            caller=convert.to_json(spec.caller),
            runtime_env={k: (v.value, v.is_secret) for k, v in spec.runtime_env.items()},
            token=spec.callback_token,
            idempotency_key=spec.idempotency_key,
            created_by=identity.current().name,
        )
        return new, placed.agent.spec

    async def create(self, request: command_pb2.CreateAgentExecutionRequest) -> ExecutionRecord:
        if not request.HasField("execution"):
            raise InvalidArgument("execution", "is required")
        new, agent_spec = await self._new_execution(request.execution)
        config = request.execution.spec.execution_config
        timeout = (
            config.timeout.ToTimedelta().total_seconds() if config.HasField("timeout") else None
        )
        return await self.lifecycle.create(new, timeout, agent_spec=agent_spec)

    async def cancel(self, request: command_pb2.CancelAgentExecutionRequest) -> ExecutionRecord:
        execution_id = validation.required(request.id, "id")
        record = await tenancy.execution(self.store, execution_id)
        if not await self.lifecycle.cancel(record, request.reason):
            raise FailedPrecondition(f"execution {execution_id} has already ended")
        return await self.store.get_execution(execution_id)

    async def update_status(
        self, request: command_pb2.UpdateAgentExecutionStatusRequest
    ) -> ExecutionRecord:
        execution_id = validation.required(request.id, "id")
        record = await tenancy.execution(self.store, execution_id)
        if record.phase in states.TERMINAL_PHASES:
            raise FailedPrecondition(f"execution {execution_id} has already ended")
        for message in request.append_messages:
            validation.required(message.content, "append_messages.content")
            if not await self.store.append_message(execution_id, message.role, message.content):
                raise FailedPrecondition(f"execution {execution_id} has already ended")
        phase = int(request.phase)
        if phase == states.PHASE_RUNNING:
            await self.store.mark_running(execution_id)
        elif phase in states.TERMINAL_PHASES:
            if phase == states.PHASE_FAILED and not request.error.type:
                raise InvalidArgument("error.type", "must not be empty with EXECUTION_PHASE_FAILED")
            if not await self.store.finish(
                execution_id,
                phase=phase,
                output=request.output,
                error_type=request.error.type,
                error_message=request.error.message,
                error_retryable=request.error.retryable,
            ):
                raise FailedPrecondition(f"execution {execution_id} has already ended")
            # The workflow stops its agent and delivers the recorded outcome.
            await self.lifecycle.signal_stop(record, "status set through the API")
        elif phase == states.PHASE_PENDING:
            raise InvalidArgument("phase", "an execution cannot go back to PENDING")
        return await self.store.get_execution(execution_id)

    async def redeliver(self, request: command_pb2.RedeliverCallbackRequest) -> ExecutionRecord:
        """Sends an ended execution's outcome again to the stored token (an operator's retry)."""
        execution_id = validation.required(request.id, "id")
        record = await tenancy.execution(self.store, execution_id)
        if not await self.store.reopen_callback(execution_id):
            raise FailedPrecondition(
                f"execution {execution_id} has no callback to redeliver: it must have ended, "
                "have a callback token, and its callback must not have been delivered"
            )
        try:
            await self.lifecycle.redeliver(record)
        except Unavailable:
            # Left as it was, so that the operator can try again.
            await self.store.record_callback(
                execution_id,
                for_token_hash=record.token_hash,
                state=record.callback_state,
                last_error=record.callback_last_error,
                attempted=False,
            )
            raise
        return await self.store.get_execution(execution_id)

    async def delete(self, request: command_pb2.DeleteAgentExecutionRequest) -> None:
        execution_id = validation.required(request.id, "id")
        record = await tenancy.execution(self.store, execution_id)
        if record.phase not in states.TERMINAL_PHASES:
            raise FailedPrecondition(f"execution {execution_id} is still running: cancel it first")
        if record.callback_state == states.CALLBACK_WAITING:
            # Its workflow (or a redelivery) is still delivering: without the row it could not,
            # and a retried caller would run the agent again under a new execution.
            raise FailedPrecondition(
                f"execution {execution_id} still owes its caller a callback: delete it once the "
                "callback is delivered or has failed"
            )
        await self.store.delete_execution(execution_id, settled_only=True)


@validation.checked
class AgentExecutionCommandService(command_pb2_grpc.AgentExecutionCommandServiceServicer):
    def __init__(self, executions: Executions) -> None:
        self.executions = executions

    async def CreateAgentExecution(
        self, request: command_pb2.CreateAgentExecutionRequest, context: Any
    ) -> api_pb2.AgentExecution:
        return convert.execution_to_proto(await self.executions.create(request))

    async def UpdateAgentExecutionStatus(
        self, request: command_pb2.UpdateAgentExecutionStatusRequest, context: Any
    ) -> api_pb2.AgentExecution:
        return convert.execution_to_proto(await self.executions.update_status(request))

    async def CancelAgentExecution(
        self, request: command_pb2.CancelAgentExecutionRequest, context: Any
    ) -> api_pb2.AgentExecution:
        return convert.execution_to_proto(await self.executions.cancel(request))

    async def RedeliverCallback(
        self, request: command_pb2.RedeliverCallbackRequest, context: Any
    ) -> api_pb2.AgentExecution:
        return convert.execution_to_proto(await self.executions.redeliver(request))

    async def DecideToolCall(
        self, request: command_pb2.DecideToolCallRequest, context: Any
    ) -> api_pb2.AgentExecution:
        e = self.executions
        return convert.execution_to_proto(
            await approvals.decide(e.store, e.client, e.settings, request)
        )

    async def DeleteAgentExecution(
        self, request: command_pb2.DeleteAgentExecutionRequest, context: Any
    ) -> empty_pb2.Empty:
        await self.executions.delete(request)
        return empty_pb2.Empty()


@validation.checked
class AgentExecutionQueryService(query_pb2_grpc.AgentExecutionQueryServiceServicer):
    def __init__(self, executions: Executions) -> None:
        self.store = executions.store
        settings = executions.settings
        self.max_watch_seconds = settings.max_watch_seconds
        self.watches = WatchHub(
            self.store,
            poll_interval=settings.watch_poll_interval,
            max_watches=settings.max_watches,
        )

    async def GetAgentExecution(
        self, request: query_pb2.GetAgentExecutionRequest, context: Any
    ) -> api_pb2.AgentExecution:
        record = await tenancy.execution(self.store, validation.required(request.id, "id"))
        return convert.execution_to_proto(record)

    async def ListAgentExecutions(
        self, request: query_pb2.ListAgentExecutionsRequest, context: Any
    ) -> query_pb2.ListAgentExecutionsResponse:
        page = paging.request(request.page_size, request.page_token)
        where = ExecutionFilter(
            orgs=tenancy.readable_orgs(),
            phases=[int(p) for p in request.phases if p],
            agent_id=request.agent_id,
            session_id=request.session_id,
            callback_states=[int(c) for c in request.callback_states if c],
        )
        records, more = await self.store.list_executions(where, after=page.after, limit=page.limit)
        last = PageCursor(records[-1].created_at, records[-1].id) if records else None
        return query_pb2.ListAgentExecutionsResponse(
            executions=[convert.execution_to_proto(r) for r in records],
            next_page_token=paging.next_token(last, more),
        )

    async def WatchAgentExecution(
        self, request: query_pb2.WatchAgentExecutionRequest, context: Any
    ) -> AsyncIterator[api_pb2.AgentExecution]:
        execution_id = validation.required(request.id, "id")
        record = await tenancy.execution(self.store, execution_id)
        try:
            watching = self.watches.watching(execution_id, record.version)
            watcher = watching.__enter__()
        except WatchLimitReached:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this replica serves its maximum of {self.watches.max_watches} watches; "
                "retry later or poll GetAgentExecution",
            )
        with contextlib.ExitStack() as ending:
            ending.push(watching.__exit__)
            sent = convert.execution_to_proto(record)
            yield sent
            deadline = asyncio.get_running_loop().time() + self.max_watch_seconds
            while record.phase not in states.TERMINAL_PHASES:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    await context.abort(
                        grpc.StatusCode.DEADLINE_EXCEEDED,
                        f"a watch lasts at most {self.max_watch_seconds:g}s; watch again",
                    )
                if not await watcher.wait(left):
                    continue
                if watcher.deleted:
                    return  # Deleted while watched.
                record = await tenancy.execution(self.store, execution_id)
                watcher.sent(record.version)
                current = convert.execution_to_proto(record)
                # A read can see a write whose version it missed (the row is read before the
                # steps); the next wake then finds nothing new to send.
                if current.status != sent.status:
                    sent = current
                    yield sent
