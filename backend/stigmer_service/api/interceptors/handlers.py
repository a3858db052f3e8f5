"""Rewrapping a method handler's behaviour: the one piece the service's interceptors share."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc

Context = grpc.aio.ServicerContext[Any, Any]
Unary = Callable[[Any, Context], Awaitable[Any]]
Stream = Callable[[Any, Context], AsyncIterator[Any]]
Deserializer = Callable[[bytes], Any]


class HandlerInterceptor(grpc.aio.ServerInterceptor):
    """An interceptor that rewraps the method handler it is given (when there is one)."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        return None if handler is None else self.intercept_handler(handler, details)

    def intercept_handler(
        self, handler: grpc.RpcMethodHandler[Any, Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        raise NotImplementedError


def metadata(details: grpc.HandlerCallDetails) -> dict[str, str]:
    """The call's text metadata (binary `-bin` values left out)."""
    return {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}


def wrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    unary: Callable[[Unary], Unary],
    stream: Callable[[Stream], Stream],
    request_deserializer: Deserializer | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """The handler with its behaviour wrapped, for every kind of method: `unary` wraps those
    with one answer, `stream` those with streamed answers. For client-streaming methods
    (reflection) the behaviour's first argument is the request iterator, and their requests are
    decoded as the handler decodes them (`request_deserializer` applies to one-request methods)."""
    deserializer = request_deserializer or handler.request_deserializer
    # grpc's stubs type a handler's behaviour as the sync one; on an aio server it is async.
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary(cast(Unary, handler.unary_unary)),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream(cast(Stream, handler.unary_stream)),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            unary(cast(Unary, handler.stream_unary)),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            stream(cast(Stream, handler.stream_stream)),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler
