"""Errors to canonical status codes: service errors, unreachable backends, undecodable requests
and crashes (logged with their traceback, told to the client as "internal error")."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc
from sqlalchemy.exc import DBAPIError, OperationalError

from backend.stigmer_service import errors, logs
from backend.stigmer_service.api.interceptors import request_id
from backend.stigmer_service.api.interceptors.handlers import (
    Context,
    Deserializer,
    HandlerInterceptor,
    Stream,
    Unary,
    wrap,
)

log = logs.get(__name__)

_CODES: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


# Status messages travel in trailers, which clients cap (8 KiB by default): a message that
# quotes a huge bad value would turn a clear INVALID_ARGUMENT into the client's RESOURCE_EXHAUSTED.
MAX_STATUS_MESSAGE = 512


def _bounded(message: str) -> str:
    if len(message) <= MAX_STATUS_MESSAGE:
        return message
    return message[: MAX_STATUS_MESSAGE - 20] + f"... ({len(message)} chars)"


def _status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(error, errors.ServiceError):
        return _CODES.get(type(error), grpc.StatusCode.INTERNAL), _bounded(str(error))
    if isinstance(error, OperationalError | DBAPIError) and getattr(
        error, "connection_invalidated", True
    ):
        return grpc.StatusCode.UNAVAILABLE, "the database is unavailable"
    if isinstance(error, ConnectionError | OSError):
        return grpc.StatusCode.UNAVAILABLE, "a backend is unavailable"
    return grpc.StatusCode.INTERNAL, "internal error"


@dataclasses.dataclass(frozen=True)
class MalformedRequest:
    """Stands for a request body that is not a valid message of the method's request type."""

    reason: str


def _tolerant(deserializer: Deserializer | None) -> Deserializer | None:
    """grpc answers an undecodable body with UNKNOWN; we want INVALID_ARGUMENT, so decoding
    failures become a `MalformedRequest` that the wrapped handler rejects."""
    if deserializer is None:
        return None

    def deserialize(body: bytes) -> Any:
        try:
            return deserializer(body)
        except Exception as error:  # DecodeError, or anything a bad body provokes
            return MalformedRequest(type(error).__name__)

    return deserialize


async def _reject_malformed(context: Context, request: MalformedRequest) -> None:
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"request: not a valid protobuf message for this method ({request.reason})",
    )


async def _fail(method: str, context: Context, error: Exception) -> None:
    """Called in the `except` block, so that a crash is logged with its traceback."""
    code, message = _status_of(error)
    if code == grpc.StatusCode.INTERNAL:
        log.exception("rpc crashed", method=method, request_id=request_id.current())
    await context.abort(code, message)


class ErrorMappingInterceptor(HandlerInterceptor):
    """Innermost of ours: it turns what the handler raises into an abort with the right code."""

    def intercept_handler(
        self, handler: grpc.RpcMethodHandler[Any, Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method: str = details.method

        def unary(behavior: Unary) -> Unary:
            async def wrapped(request: Any, context: Context) -> Any:
                if isinstance(request, MalformedRequest):
                    await _reject_malformed(context, request)
                try:
                    return await behavior(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as error:
                    await _fail(method, context, error)

            return wrapped

        def stream(behavior: Stream) -> Stream:
            async def wrapped(request: Any, context: Context) -> AsyncIterator[Any]:
                if isinstance(request, MalformedRequest):
                    await _reject_malformed(context, request)
                try:
                    async for response in behavior(request, context):
                        yield response
                except grpc.aio.AbortError:
                    raise
                except Exception as error:
                    await _fail(method, context, error)

            return wrapped

        return wrap(handler, unary, stream, _tolerant(handler.request_deserializer))
