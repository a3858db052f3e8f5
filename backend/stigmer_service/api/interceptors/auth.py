"""Bearer-token auth: every RPC but health's is made by a configured credential's identity, and
only the methods its role allows; the identity is bound for the handler (`identity.current()`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from backend.stigmer_service import identity
from backend.stigmer_service.api.interceptors.handlers import (
    Context,
    HandlerInterceptor,
    Stream,
    Unary,
    metadata,
    wrap,
)
from backend.stigmer_service.identity import Credentials, Identity

# Health is exempt: load balancers and orchestrators probe it without the token.
HEALTH_PREFIX = "/grpc.health.v1.Health/"
UNAUTHENTICATED = "missing or wrong bearer token"


def _refusal(code: grpc.StatusCode, message: str) -> tuple[Unary, Stream]:
    async def unary(request: Any, context: Context) -> Any:
        await context.abort(code, message)

    async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
        await context.abort(code, message)
        yield  # never reached: it makes this an async generator, as a streaming handler must be

    return unary, stream


def _bound_unary(caller: Identity, behavior: Unary) -> Unary:
    async def unary(request: Any, context: Context) -> Any:
        bound = identity.bind(caller)
        try:
            return await behavior(request, context)
        finally:
            with contextlib.suppress(ValueError):
                identity.unbind(bound)

    return unary


def _bound_stream(caller: Identity, behavior: Stream) -> Stream:
    async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
        # Each RPC runs in a task of its own, so the binding cannot leak to another call.
        identity.bind(caller)
        async for response in behavior(request, context):
            yield response

    return stream


class BearerAuthInterceptor(HandlerInterceptor):
    """Refuses before the request is looked at (a malformed body without the token is
    UNAUTHENTICATED, not INVALID_ARGUMENT); no credential configured allows everything. Covers
    every kind of method, stream-request ones (reflection) too."""

    def __init__(self, credentials: Credentials | str = "") -> None:
        self._credentials = (
            credentials if isinstance(credentials, Credentials) else identity.load("", credentials)
        )

    def intercept_handler(
        self, handler: grpc.RpcMethodHandler[Any, Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method: str = details.method
        if method.startswith(HEALTH_PREFIX):
            return handler
        caller = self._credentials.identify(metadata(details).get("authorization", ""))
        if caller is None:
            refused = _refusal(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED)
        elif not caller.may_call(method):
            refused = _refusal(
                grpc.StatusCode.PERMISSION_DENIED, f"role {caller.role} may not call {method}"
            )
        else:
            found = caller
            return wrap(
                handler,
                lambda behavior: _bound_unary(found, behavior),
                lambda behavior: _bound_stream(found, behavior),
            )
        deny_unary, deny_stream = refused
        return wrap(handler, lambda _: deny_unary, lambda _: deny_stream)
