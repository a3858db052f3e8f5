"""One log line per RPC: method, final status code, duration and request id."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from backend.stigmer_service import logs
from backend.stigmer_service.api.interceptors import request_id
from backend.stigmer_service.api.interceptors.handlers import (
    Context,
    HandlerInterceptor,
    Stream,
    Unary,
    wrap,
)

log = logs.get(__name__)


def _code_after(context: Context) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK


def _log(method: str, context: Context, start: float) -> None:
    log.info(
        "rpc",
        method=method,
        status=_code_after(context).name,
        duration_ms=round((time.monotonic() - start) * 1000, 1),
        request_id=request_id.current(),
    )


class AccessLogInterceptor(HandlerInterceptor):
    """Sits outside auth and error mapping, so that it sees the status they abort with (every
    failure reaches it as an `AbortError`)."""

    def intercept_handler(
        self, handler: grpc.RpcMethodHandler[Any, Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method: str = details.method

        def unary(behavior: Unary) -> Unary:
            async def wrapped(request: Any, context: Context) -> Any:
                start = time.monotonic()
                try:
                    response = await behavior(request, context)
                except grpc.aio.AbortError:
                    _log(method, context, start)
                    raise
                _log(method, context, start)
                return response

            return wrapped

        def stream(behavior: Stream) -> Stream:
            async def wrapped(request: Any, context: Context) -> AsyncIterator[Any]:
                start = time.monotonic()
                try:
                    async for response in behavior(request, context):
                        yield response
                except grpc.aio.AbortError:
                    _log(method, context, start)
                    raise
                _log(method, context, start)

            return wrapped

        return wrap(handler, unary, stream)
