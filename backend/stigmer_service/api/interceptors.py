"""Server interceptors: request ids, request logging, bearer auth, and error-to-status mapping."""

from __future__ import annotations

import dataclasses
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from sqlalchemy.exc import DBAPIError, OperationalError

from backend.stigmer_service import errors, logs

log = logs.get(__name__)

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REQUEST_ID_KEY = "x-request-id"

_CODES: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
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


class _Call:
    """Shared bookkeeping of one RPC: id, timing, the final log line, the error mapping."""

    def __init__(self, method: str, metadata: dict[str, str]) -> None:
        self.method = method
        self.request_id = metadata.get(REQUEST_ID_KEY) or uuid.uuid4().hex
        self.start = time.monotonic()

    def begin(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        structlog.contextvars.bind_contextvars(request_id=self.request_id)
        context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))

    async def fail(self, context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> None:
        code, message = _status_of(error)
        if code == grpc.StatusCode.INTERNAL:
            log.exception("rpc crashed", method=self.method, request_id=self.request_id)
        self.done(code)
        await context.abort(code, message)

    def done(self, code: grpc.StatusCode) -> None:
        log.info(
            "rpc",
            method=self.method,
            status=code.name,
            duration_ms=round((time.monotonic() - self.start) * 1000, 1),
            request_id=self.request_id,
        )
        structlog.contextvars.unbind_contextvars("request_id")


def _code_after(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK


@dataclasses.dataclass(frozen=True)
class MalformedRequest:
    """Stands for a request body that is not a valid message of the method's request type."""

    reason: str


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
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


async def _reject_malformed(
    call: _Call, context: grpc.aio.ServicerContext[Any, Any], request: MalformedRequest
) -> None:
    call.done(grpc.StatusCode.INVALID_ARGUMENT)
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"request: not a valid protobuf message for this method ({request.reason})",
    )


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler; with `api_token` set, non-health RPCs need `Bearer <token>`."""

    def __init__(self, api_token: str = "") -> None:
        self._api_token = api_token

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None:
            return handler
        method: str = details.method
        metadata = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        authorized = (
            not self._api_token
            or method.startswith(HEALTH_PREFIX)
            or hmac.compare_digest(
                metadata.get("authorization", "").encode(), f"Bearer {self._api_token}".encode()
            )
        )
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, metadata, handler.unary_unary, authorized),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, metadata, handler.unary_stream, authorized),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

    @staticmethod
    async def _deny(call: _Call, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        call.done(grpc.StatusCode.UNAUTHENTICATED)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

    def _unary(
        self, method: str, metadata: dict[str, str], behavior: Any, authorized: bool
    ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call = _Call(method, metadata)
            call.begin(context)
            if not authorized:
                await self._deny(call, context)
            if isinstance(request, MalformedRequest):
                await _reject_malformed(call, context, request)
            try:
                response = await behavior(request, context)
            except grpc.aio.AbortError:
                call.done(_code_after(context))
                raise
            except Exception as error:
                await call.fail(context, error)
            call.done(_code_after(context))
            return response

        return wrapped

    def _stream(
        self, method: str, metadata: dict[str, str], behavior: Any, authorized: bool
    ) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
        async def wrapped(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            call = _Call(method, metadata)
            call.begin(context)
            if not authorized:
                await self._deny(call, context)
            if isinstance(request, MalformedRequest):
                await _reject_malformed(call, context, request)
            try:
                async for response in behavior(request, context):
                    yield response
            except grpc.aio.AbortError:
                call.done(_code_after(context))
                raise
            except Exception as error:
                await call.fail(context, error)
            call.done(_code_after(context))

        return wrapped
