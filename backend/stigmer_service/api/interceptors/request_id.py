"""Request ids: the caller's `x-request-id` or a new one, bound to the call's logs and echoed in
its trailers."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import structlog

from backend.stigmer_service.api.interceptors.handlers import (
    Context,
    HandlerInterceptor,
    Stream,
    Unary,
    metadata,
    wrap,
)

REQUEST_ID_KEY = "x-request-id"
# The structlog context key: every log line of the call carries it.
_LOG_KEY = "request_id"


def current() -> str:
    """The request id of the RPC being handled ("" outside one)."""
    return str(structlog.contextvars.get_contextvars().get(_LOG_KEY, ""))


@contextlib.contextmanager
def _bound(request_id: str, context: Context) -> Iterator[None]:
    structlog.contextvars.bind_contextvars(**{_LOG_KEY: request_id})
    context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
    try:
        yield
    finally:
        structlog.contextvars.unbind_contextvars(_LOG_KEY)


class RequestIdInterceptor(HandlerInterceptor):
    """Outermost of ours, so that the other interceptors' log lines carry the id too."""

    def intercept_handler(
        self, handler: grpc.RpcMethodHandler[Any, Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        given = metadata(details).get(REQUEST_ID_KEY)

        def unary(behavior: Unary) -> Unary:
            async def wrapped(request: Any, context: Context) -> Any:
                with _bound(given or uuid.uuid4().hex, context):
                    return await behavior(request, context)

            return wrapped

        def stream(behavior: Stream) -> Stream:
            async def wrapped(request: Any, context: Context) -> AsyncIterator[Any]:
                with _bound(given or uuid.uuid4().hex, context):
                    async for response in behavior(request, context):
                        yield response

            return wrapped

        return wrap(handler, unary, stream)
