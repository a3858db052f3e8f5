"""The gRPC server: servicers, health, reflection and interceptors on one `grpc.aio` server."""

from __future__ import annotations

import ipaddress

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

from backend.common import grpc_tls, tracing
from backend.stigmer_service import identity
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
from backend.stigmer_service.logs import get as get_logger
from backend.stigmer_service.store.repository import Store

SERVICE_NAMES = (
    agent_command_pb2.DESCRIPTOR.services_by_name["AgentCommandService"].full_name,
    agent_query_pb2.DESCRIPTOR.services_by_name["AgentQueryService"].full_name,
    command_pb2.DESCRIPTOR.services_by_name["AgentExecutionCommandService"].full_name,
    query_pb2.DESCRIPTOR.services_by_name["AgentExecutionQueryService"].full_name,
)

log = get_logger(__name__)


class InsecureBindError(Exception):
    """A non-loopback address without any authentication, and no explicit permission."""


def is_loopback(address: str) -> bool:
    """Whether `address` (HOST:PORT, [V6]:PORT or unix:PATH) is reachable from this host only."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # A host name or an empty host: it may resolve to anything.
        return False


def check_exposure(settings: Settings) -> None:
    """Refuses to serve a non-loopback address with no token, credentials or client CA (anyone
    who reaches the port could act on every org) unless the operator allowed it; warns when a
    non-loopback address is served without TLS (tokens and secrets would cross in clear)."""
    if is_loopback(settings.listen):
        return
    authenticated = bool(
        settings.api_token or settings.credentials_file or settings.tls_client_ca_file
    )
    if not authenticated and not settings.allow_insecure_public:
        raise InsecureBindError(
            f"refusing to listen on {settings.listen} without authentication: set "
            "STIGMER_API_TOKEN or STIGMER_CREDENTIALS_FILE (or STIGMER_TLS_CLIENT_CA for mTLS), "
            "listen on a loopback address, or pass --allow-insecure-public "
            "(STIGMER_ALLOW_INSECURE_PUBLIC=1) to accept anyone who reaches the port"
        )
    if not authenticated:
        log.warning(
            "listening on a non-loopback address without authentication", address=settings.listen
        )
    if not settings.tls_cert_file:
        log.warning(
            "listening on a non-loopback address without TLS: tokens and secrets cross in "
            "clear (set STIGMER_TLS_CERT and STIGMER_TLS_KEY)",
            address=settings.listen,
        )


def _bind(server: grpc.aio.Server, address: str, settings: Settings) -> int:
    tls = grpc_tls.ServerTls(
        settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
    )
    if tls.enabled:
        return server.add_secure_port(address, tls.credentials())
    return server.add_insecure_port(address)


def service_interceptors(
    credentials: identity.Credentials | str,
) -> list[grpc.aio.ServerInterceptor]:
    """Ours, outermost first (grpc runs the first one's wrapper around all the others)."""
    return [
        # First, so that every log line of the call, the others' too, carries its request id.
        RequestIdInterceptor(),
        # Outside auth and error mapping, so that its one line sees the code they abort with.
        AccessLogInterceptor(),
        # Before the request is decoded or handled: without the token nothing else is told.
        BearerAuthInterceptor(credentials),
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
            *service_interceptors(identity.load(settings.credentials_file, settings.api_token)),
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
    port = _bind(server, address, settings)
    if port == 0:
        raise OSError(f"could not bind {address}")
    return server, port, health_servicer


async def set_serving(health_servicer: health.aio.HealthServicer) -> None:
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


async def set_not_serving(health_servicer: health.aio.HealthServicer) -> None:
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
