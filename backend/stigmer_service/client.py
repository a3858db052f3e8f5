"""A typed client of a running Stigmer service: one channel (TLS when configured), bearer auth, a
deadline on each call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Self

import grpc
from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_grpc
from ai.stigmer.agentic.agent.v1 import query_pb2 as agent_query_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2_grpc as agent_query_grpc
from ai.stigmer.agentic.agentexecution.v1 import (
    api_pb2,
    command_pb2,
    command_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
    status_pb2,
)

from backend.common import grpc_tls
from backend.common.service_channel import ServiceChannel

# A hung service must fail a call, never hang the command; `watch_execution` alone has no
# deadline, since it follows an execution for as long as the execution runs.
DEFAULT_DEADLINE_SECONDS = 30.0
# The page size of one-page lists (`list_agents`, `list_executions`), as the CLI always asked.
PAGE_SIZE = 500


class ServiceClient(ServiceChannel):
    """The service's agent and agent-execution calls, typed; use it as an async context manager.

    The channel is opened on first use, so it belongs to the event loop that makes the calls.
    """

    def __init__(
        self,
        endpoint: str,
        api_token: str = "",
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        tls: grpc_tls.ClientTls | None = None,
    ) -> None:
        """`tls` None: from the STIGMER_TLS_* variables (plaintext when none is set)."""
        super().__init__(endpoint, api_token, deadline_seconds, tls)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _agent_commands(self) -> agent_command_grpc.AgentCommandServiceAsyncStub:
        return agent_command_grpc.AgentCommandServiceStub(self._open())

    def _agent_queries(self) -> agent_query_grpc.AgentQueryServiceAsyncStub:
        return agent_query_grpc.AgentQueryServiceStub(self._open())

    def _commands(self) -> command_pb2_grpc.AgentExecutionCommandServiceAsyncStub:
        return command_pb2_grpc.AgentExecutionCommandServiceStub(self._open())

    def _queries(self) -> query_pb2_grpc.AgentExecutionQueryServiceAsyncStub:
        return query_pb2_grpc.AgentExecutionQueryServiceStub(self._open())

    async def apply_agent(self, agent: agent_api_pb2.Agent) -> agent_api_pb2.Agent:
        return await self._agent_commands().ApplyAgent(
            agent_command_pb2.ApplyAgentRequest(agent=agent),
            timeout=self._deadline,
            metadata=self._metadata,
        )

    async def get_agent(self, agent_id: str) -> agent_api_pb2.Agent:
        return await self._agent_queries().GetAgent(
            agent_query_pb2.GetAgentRequest(id=agent_id),
            timeout=self._deadline,
            metadata=self._metadata,
        )

    async def list_agents(self, org: str = "") -> list[agent_api_pb2.Agent]:
        """The first page of the organization's agents."""
        page = await self._agent_queries().ListAgents(
            agent_query_pb2.ListAgentsRequest(org=org, page_size=PAGE_SIZE),
            timeout=self._deadline,
            metadata=self._metadata,
        )
        return list(page.agents)

    async def get_execution(self, execution_id: str) -> api_pb2.AgentExecution:
        return await self._queries().GetAgentExecution(
            query_pb2.GetAgentExecutionRequest(id=execution_id),
            timeout=self._deadline,
            metadata=self._metadata,
        )

    async def list_executions(
        self, phases: Sequence[status_pb2.ExecutionPhase.ValueType] = ()
    ) -> list[api_pb2.AgentExecution]:
        """The first page of executions (newest first), only those in `phases` if any."""
        page = await self._queries().ListAgentExecutions(
            query_pb2.ListAgentExecutionsRequest(phases=phases, page_size=PAGE_SIZE),
            timeout=self._deadline,
            metadata=self._metadata,
        )
        return list(page.executions)

    async def list_all_executions(
        self, callback_states: Sequence[status_pb2.CallbackState.ValueType]
    ) -> list[api_pb2.AgentExecution]:
        """Every execution whose callback is in one of `callback_states`, all pages read."""
        found: list[api_pb2.AgentExecution] = []
        token = ""
        while True:
            page = await self._queries().ListAgentExecutions(
                query_pb2.ListAgentExecutionsRequest(
                    callback_states=callback_states, page_size=PAGE_SIZE, page_token=token
                ),
                timeout=self._deadline,
                metadata=self._metadata,
            )
            found.extend(page.executions)
            token = page.next_page_token
            if not token:
                return found

    async def watch_execution(self, execution_id: str) -> AsyncIterator[api_pb2.AgentExecution]:
        """Each new state of the execution until it ends (no deadline)."""
        while True:
            stream = self._queries().WatchAgentExecution(
                query_pb2.WatchAgentExecutionRequest(id=execution_id), metadata=self._metadata
            )
            try:
                async for execution in stream:
                    yield execution
                return
            except grpc.aio.AioRpcError as error:
                # The service ends a watch at its maximum duration: follow on with a new one.
                if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise

    async def cancel_execution(self, execution_id: str, reason: str = "") -> api_pb2.AgentExecution:
        return await self._commands().CancelAgentExecution(
            command_pb2.CancelAgentExecutionRequest(id=execution_id, reason=reason),
            timeout=self._deadline,
            metadata=self._metadata,
        )

    async def redeliver_callback(self, execution_id: str) -> api_pb2.AgentExecution:
        return await self._commands().RedeliverCallback(
            command_pb2.RedeliverCallbackRequest(id=execution_id),
            timeout=self._deadline,
            metadata=self._metadata,
        )

    async def decide_tool_call(
        self, execution_id: str, step_index: int, approve: bool, reason: str = ""
    ) -> api_pb2.AgentExecution:
        return await self._commands().DecideToolCall(
            command_pb2.DecideToolCallRequest(
                id=execution_id, step_index=step_index, approve=approve, reason=reason
            ),
            timeout=self._deadline,
            metadata=self._metadata,
        )
