"""The Stigmer service client the agent-call activity needs: one channel (TLS when configured),
bearer auth, deadlines."""

from __future__ import annotations

from ai.stigmer.agentic.agent.v1 import api_pb2 as agent_api_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2 as agent_query_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2_grpc as agent_query_pb2_grpc
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, command_pb2, command_pb2_grpc
from ai.stigmer.commons.apiresource import reference_pb2

from backend.common import grpc_tls
from backend.common.service_channel import ServiceChannel

# Every call is bounded: a hung service must fail the call (and retry it), never hang a slot.
DEFAULT_DEADLINE_SECONDS = 15.0


class StigmerClient(ServiceChannel):
    """The agent query and agent-execution command calls, on one lazily opened channel.

    The channel is opened on first use so that it belongs to the event loop of the worker that
    runs the activity, not to whatever loop (if any) constructed the client.
    """

    def __init__(
        self,
        endpoint: str,
        api_token: str | None = None,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        tls: grpc_tls.ClientTls | None = None,
    ) -> None:
        """`tls` None: from the STIGMER_TLS_* variables (plaintext when none is set)."""
        # Traced: each call carries the activity's trace context to the service.
        super().__init__(endpoint, api_token, deadline_seconds, tls, traced=True)

    async def get_agent_by_reference(
        self, reference: reference_pb2.ApiResourceReference
    ) -> agent_api_pb2.Agent:
        stub = agent_query_pb2_grpc.AgentQueryServiceStub(self._open())
        return await stub.GetAgentByReference(
            agent_query_pb2.GetAgentByReferenceRequest(ref=reference),
            timeout=self._deadline,
            metadata=self._metadata,
        )

    async def create_execution(self, execution: api_pb2.AgentExecution) -> api_pb2.AgentExecution:
        stub = command_pb2_grpc.AgentExecutionCommandServiceStub(self._open())
        return await stub.CreateAgentExecution(
            command_pb2.CreateAgentExecutionRequest(execution=execution),
            timeout=self._deadline,
            metadata=self._metadata,
        )

    async def cancel_execution(self, execution_id: str, reason: str) -> api_pb2.AgentExecution:
        stub = command_pb2_grpc.AgentExecutionCommandServiceStub(self._open())
        return await stub.CancelAgentExecution(
            command_pb2.CancelAgentExecutionRequest(id=execution_id, reason=reason),
            timeout=self._deadline,
            metadata=self._metadata,
        )
