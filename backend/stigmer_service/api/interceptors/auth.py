"""Bearer-token auth: with an API token set, every RPC but health's needs `Bearer <token>`."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Any

import grpc

from backend.stigmer_service.api.interceptors.handlers import (
    Context,
    HandlerInterceptor,
    Stream,
    Unary,
    metadata,
    wrap,
)

# Health is exempt: load balancers and orchestrators probe it without the token.
HEALTH_PREFIX = "/grpc.health.v1.Health/"


async def _deny(context: Context) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")


async def _deny_unary(request: Any, context: Context) -> Any:
    await _deny(context)


async def _deny_stream(request: Any, context: Context) -> AsyncIterator[Any]:
    await _deny(context)
    yield  # never reached: it makes this an async generator, as a streaming handler must be


class BearerAuthInterceptor(HandlerInterceptor):
    """Refuses before the request is looked at (a malformed body without the token is
    UNAUTHENTICATED, not INVALID_ARGUMENT); no token configured allows everything."""

    def __init__(self, api_token: str = "") -> None:
        self._api_token = api_token

    def _allows(self, details: grpc.HandlerCallDetails) -> bool:
        method: str = details.method
        return (
            not self._api_token
            or method.startswith(HEALTH_PREFIX)
            or hmac.compare_digest(
                metadata(details).get("authorization", "").encode(),
                f"Bearer {self._api_token}".encode(),
            )
        )

    def intercept_handler(
        self, handler: grpc.RpcMethodHandler[Any, Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        if self._allows(details):
            return handler

        def unary(behavior: Unary) -> Unary:
            return _deny_unary

        def stream(behavior: Stream) -> Stream:
            return _deny_stream

        return wrap(handler, unary, stream)
