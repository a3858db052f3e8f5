"""The server interceptors on a bare `grpc.aio` server: request ids, the log line, auth, error codes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import grpc
import pytest
import pytest_asyncio
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from sqlalchemy.exc import OperationalError

from backend.stigmer_service import errors
from backend.stigmer_service.api.interceptors.error_mapping import MAX_STATUS_MESSAGE
from backend.stigmer_service.server import service_interceptors
from tests.support.eventually import eventually

TOKEN = "s3cr3t-api-token"
GOOD = (("authorization", f"Bearer {TOKEN}"),)
UNARY = "/stigmer.test.Probe/Unary"
STREAM = "/stigmer.test.Probe/Stream"
BIDI = "/stigmer.test.Probe/Bidi"


async def _unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    """What the probe does is named by the request's `service` field."""
    what = request.service
    if what == "crash":
        raise RuntimeError("boom")
    if what == "not-found":
        raise errors.NotFound("agent x: not found")
    if what == "huge":
        raise errors.InvalidArgument("spec.message", "x" * 10_000)
    if what == "database":
        raise OperationalError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    if what == "socket":
        raise ConnectionRefusedError("refused")
    if what == "abort":
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "aborted by the handler")
    return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def _stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
    yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
    if request.service == "crash":
        raise RuntimeError("boom")
    yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)


async def _bidi(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
    async for _ in requests:
        yield health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def _probe_handlers() -> grpc.GenericRpcHandler:
    decode = health_pb2.HealthCheckRequest.FromString
    encode = health_pb2.HealthCheckResponse.SerializeToString
    return grpc.method_handlers_generic_handler(
        "stigmer.test.Probe",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary, decode, encode),
            "Stream": grpc.unary_stream_rpc_method_handler(_stream, decode, encode),
            "Bidi": grpc.stream_stream_rpc_method_handler(_bidi, decode, encode),
        },
    )


@dataclasses.dataclass
class Probe:
    channel: grpc.aio.Channel

    def unary(self, what: str = "ok", metadata: Any = GOOD) -> Any:
        call = self.channel.unary_unary(
            UNARY,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        return call(health_pb2.HealthCheckRequest(service=what), metadata=metadata)

    def raw(self, body: bytes, metadata: Any = GOOD) -> Any:
        call: Any = self.channel.unary_unary(UNARY)
        return call(body, metadata=metadata)

    def stream(self, what: str = "ok", metadata: Any = GOOD) -> Any:
        call = self.channel.unary_stream(
            STREAM,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        return call(health_pb2.HealthCheckRequest(service=what), metadata=metadata)


async def _serve(api_token: str) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(interceptors=service_interceptors(api_token))
    server.add_generic_rpc_handlers((_probe_handlers(),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, port


@pytest_asyncio.fixture
async def probe() -> AsyncIterator[Probe]:
    server, port = await _serve(TOKEN)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Probe(channel)
    await server.stop(None)


async def _drain(call: Any) -> list[Any]:
    return [answer async for answer in call]


def _rpc_lines(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == "rpc"]


async def _failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def test_a_request_id_is_echoed_or_made_and_logged_once(probe: Probe) -> None:
    with structlog.testing.capture_logs() as logs:
        given = probe.unary(metadata=(*GOOD, ("x-request-id", "req-1")))
        await given
        made = probe.unary()
        await made
    assert dict(await given.trailing_metadata())["x-request-id"] == "req-1"
    generated = dict(await made.trailing_metadata())["x-request-id"]
    assert len(generated) == 32 and generated != "req-1"
    lines = _rpc_lines(logs)
    assert [(line["method"], line["status"], line["request_id"]) for line in lines] == [
        (UNARY, "OK", "req-1"),
        (UNARY, "OK", generated),
    ]
    assert all(line["duration_ms"] >= 0 for line in lines)
    # The request id is not left bound to the test's context.
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_auth_needs_the_bearer_token_except_for_health(probe: Probe) -> None:
    with structlog.testing.capture_logs() as logs:
        missing = await _failure(probe.unary(metadata=()))
        wrong = await _failure(probe.unary(metadata=(("authorization", "Bearer wrong"),)))
        streamed = await _failure(_drain(probe.stream(metadata=())))
        # A malformed body without the token is refused for the token, before it is looked at.
        malformed = await _failure(probe.raw(b"\xff\xff", metadata=()))
        checked = await health_pb2_grpc.HealthStub(probe.channel).Check(
            health_pb2.HealthCheckRequest()
        )
    for refused in (missing, wrong, streamed, malformed):
        assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
        assert refused.details() == "missing or wrong bearer token"
        assert refused.trailing_metadata() is not None
        assert "x-request-id" in dict(refused.trailing_metadata())
    assert checked.status == health_pb2.HealthCheckResponse.SERVING
    assert [(line["method"], line["status"]) for line in _rpc_lines(logs)] == [
        (UNARY, "UNAUTHENTICATED"),
        (UNARY, "UNAUTHENTICATED"),
        (STREAM, "UNAUTHENTICATED"),
        (UNARY, "UNAUTHENTICATED"),
        ("/grpc.health.v1.Health/Check", "OK"),
    ]


async def test_without_a_token_configured_everything_is_allowed() -> None:
    server, port = await _serve("")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = await Probe(channel).unary(metadata=())
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(None)


async def test_errors_become_canonical_codes(probe: Probe) -> None:
    with structlog.testing.capture_logs() as logs:
        not_found = await _failure(probe.unary("not-found"))
        huge = await _failure(probe.unary("huge"))
        database = await _failure(probe.unary("database"))
        socket = await _failure(probe.unary("socket"))
        aborted = await _failure(probe.unary("abort"))
        crashed = await _failure(probe.unary("crash"))
    assert (not_found.code(), not_found.details()) == (
        grpc.StatusCode.NOT_FOUND,
        "agent x: not found",
    )
    assert huge.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (huge.details() or "").startswith("spec.message: xxx")
    assert (huge.details() or "").endswith("x... (10014 chars)")
    assert len(huge.details() or "") <= MAX_STATUS_MESSAGE
    assert (database.code(), database.details()) == (
        grpc.StatusCode.UNAVAILABLE,
        "the database is unavailable",
    )
    assert (socket.code(), socket.details()) == (
        grpc.StatusCode.UNAVAILABLE,
        "a backend is unavailable",
    )
    assert (aborted.code(), aborted.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "aborted by the handler",
    )
    # A crash tells the client nothing of its cause; the log has the traceback.
    assert (crashed.code(), crashed.details()) == (grpc.StatusCode.INTERNAL, "internal error")
    assert [line["status"] for line in _rpc_lines(logs)] == [
        "NOT_FOUND",
        "INVALID_ARGUMENT",
        "UNAVAILABLE",
        "UNAVAILABLE",
        "FAILED_PRECONDITION",
        "INTERNAL",
    ]
    crashes = [line for line in logs if line["event"] == "rpc crashed"]
    assert len(crashes) == 1 and crashes[0]["method"] == UNARY and crashes[0]["exc_info"]
    assert crashes[0]["request_id"] == _rpc_lines(logs)[-1]["request_id"]
    # The crash is logged before the request's one line.
    assert logs.index(crashes[0]) < logs.index(_rpc_lines(logs)[-1])


async def test_a_malformed_body_is_invalid_argument(probe: Probe) -> None:
    with structlog.testing.capture_logs() as logs:
        refused = await _failure(probe.raw(b"\xff\xff"))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (refused.details() or "").startswith(
            "request: not a valid protobuf message for this method ("
        )

        # The status reaches the client before the server's handler has logged it: under load
        # (a busy machine) the line comes a moment later.
        async def logged_once() -> None:
            assert [line["status"] for line in _rpc_lines(logs)] == ["INVALID_ARGUMENT"]

        await eventually(logged_once, timeout=10.0)


async def test_a_stream_is_logged_when_it_ends(probe: Probe) -> None:
    with structlog.testing.capture_logs() as logs:
        answers = [a.status async for a in probe.stream()]
        call = probe.stream("crash")
        first = [a.status async for a in _until_error(call)]
    assert answers == [
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    ]
    assert first == [health_pb2.HealthCheckResponse.SERVING]
    assert await call.code() == grpc.StatusCode.INTERNAL
    assert [(line["method"], line["status"]) for line in _rpc_lines(logs)] == [
        (STREAM, "OK"),
        (STREAM, "INTERNAL"),
    ]


async def _until_error(call: Any) -> AsyncIterator[Any]:
    try:
        async for answer in call:
            yield answer
    except grpc.aio.AioRpcError:
        return


async def test_stream_request_methods_go_through_every_interceptor(probe: Probe) -> None:
    """Finding 14: client-streaming methods (reflection is one) once skipped auth; now they are
    wrapped like the others: refused without the token, logged once with it."""
    call = probe.channel.stream_stream(
        BIDI,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    with structlog.testing.capture_logs() as logs:
        refused = await _failure(_drain(call(iter([health_pb2.HealthCheckRequest()]), metadata=())))
        bidi = call(iter([health_pb2.HealthCheckRequest()]), metadata=GOOD)
        answers = [a.status async for a in bidi]
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert answers == [health_pb2.HealthCheckResponse.SERVING]
    assert [(line["method"], line["status"]) for line in _rpc_lines(logs)] == [
        (BIDI, "UNAUTHENTICATED"),
        (BIDI, "OK"),
    ]
