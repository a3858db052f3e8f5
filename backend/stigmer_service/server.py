"""The gRPC server: servicers, health, reflection and interceptors on one `grpc.aio` server."""

from __future__ import annotations

import grpc
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import command_pb2_grpc as agent_command_grpc
from ai.stigmer.agentic.agent.v1 import query_pb2 as agent_query_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2_grpc as agent_query_grpc
from ai.stigmer.agentic.agentexecution.v1 import (
    command_pb2,
    command_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_reflection.v1alpha import reflection  # type: ignore[import-untyped]
from temporalio.client import Client

from backend.common import tracing
from backend.stigmer_service.api.agents import AgentCommandService, AgentQueryService
from backend.stigmer_service.api.executions import (
    AgentExecutionCommandService,
    AgentExecutionQueryService,
    Executions,
)
from backend.stigmer_service.api.interceptors.access_log import AccessLogInterceptor
from backend.stigmer_service.api.interceptors.auth import BearerAuthInterceptor
from backend.stigmer_service.api.interceptors.error_mapping import ErrorMappingInterceptor
from backend.stigmer_service.api.interceptors.request_id import RequestIdInterceptor
from backend.stigmer_service.config import Settings
from backend.stigmer_service.store.repository import Store

SERVICE_NAMES = (
    agent_command_pb2.DESCRIPTOR.services_by_name["AgentCommandService"].full_name,
    agent_query_pb2.DESCRIPTOR.services_by_name["AgentQueryService"].full_name,
    command_pb2.DESCRIPTOR.services_by_name["AgentExecutionCommandService"].full_name,
    query_pb2.DESCRIPTOR.services_by_name["AgentExecutionQueryService"].full_name,
)


def service_interceptors(api_token: str) -> list[grpc.aio.ServerInterceptor]:
    """Ours, outermost first (grpc runs the first one's wrapper around all the others)."""
    return [
        # First, so that every log line of the call, the others' too, carries its request id.
        RequestIdInterceptor(),
        # Outside auth and error mapping, so that its one line sees the code they abort with.
        AccessLogInterceptor(),
        # Before the request is decoded or handled: without the token nothing else is told.
        BearerAuthInterceptor(api_token),
        # Next to the handlers: what they raise becomes a canonical status code.
        ErrorMappingInterceptor(),
    ]


def create_server(
    address: str, *, store: Store, client: Client, settings: Settings
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A server bound to `address` (port 0 picks one), not yet started, with its bound port.

    Health reports NOT_FOUND until `set_serving` is awaited after the server starts.
    """
    # The tracing interceptor comes first, so that the RPC's span (continuing the caller's trace)
    # is current while the handler runs and starts the execution's workflow.
    server = grpc.aio.server(
        interceptors=[
            *tracing.grpc_server_interceptors(),
            *service_interceptors(settings.api_token),
        ]
    )
    executions = Executions(store, client, settings)
    agent_command_grpc.add_AgentCommandServiceServicer_to_server(AgentCommandService(store), server)
    agent_query_grpc.add_AgentQueryServiceServicer_to_server(AgentQueryService(store), server)
    command_pb2_grpc.add_AgentExecutionCommandServiceServicer_to_server(
        AgentExecutionCommandService(executions), server
    )
    query_pb2_grpc.add_AgentExecutionQueryServiceServicer_to_server(
        AgentExecutionQueryService(executions), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    return server, port, health_servicer


async def set_serving(health_servicer: health.aio.HealthServicer) -> None:
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


async def set_not_serving(health_servicer: health.aio.HealthServicer) -> None:
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
