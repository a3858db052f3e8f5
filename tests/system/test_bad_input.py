"""Thousands of bad requests through gRPC against the real service process: it answers each with
a canonical client-error status, never an internal one, and keeps serving afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2 as agent_query_pb2
from ai.stigmer.agentic.agentexecution.v1 import command_pb2, query_pb2
from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.stack import Stack
from tests.system import flows

EXAMPLES = 2000
# gRPC's default limit on a received message, which the service keeps.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
ALLOWED = {
    grpc.StatusCode.OK,  # a random request may happen to be valid
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,  # a valid create that repeats an earlier one
}
SERVICES = [
    service
    for module in (agent_command_pb2, agent_query_pb2, command_pb2, query_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
]
METHODS = [method for service in SERVICES for method in service.methods]

FD = descriptor.FieldDescriptor
# Strings a client might get wrong: empty, unicode, control characters, and very long ones.
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "aex-" + "0" * 32, "../../etc/passwd", "${ .x }"]),
    st.builds(lambda n, c: c * n, st.integers(1_000, 300_000), st.sampled_from("a\x00é🙂")),
)
numbers = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, -1, 1, 2**31 - 1]))
floats = st.floats(allow_nan=True, allow_infinity=True)


def _value(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FD.TYPE_MESSAGE:
        assert field.message_type is not None
        return _message(field.message_type, depth + 1)
    if field.type == FD.TYPE_STRING:
        return texts
    if field.type == FD.TYPE_BYTES:
        return st.binary(max_size=4096)  # malformed callback tokens, among others
    if field.type == FD.TYPE_BOOL:
        return st.booleans()
    if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return floats
    if field.type == FD.TYPE_ENUM:
        return numbers  # defined values and undefined ones alike
    if field.type in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return st.integers(-(2**63), 2**63 - 1)
    if field.type in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if field.type in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    return numbers


def _message(message_type: descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(message_type)
    if depth > 3:
        return st.just(cls())

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = cls()
        for field in message_type.fields:
            if not draw(st.booleans()):
                continue
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                key_field = field.message_type.fields_by_name["key"]
                value_field = field.message_type.fields_by_name["value"]
                for _ in range(draw(st.integers(0, 3))):
                    key = draw(_value(key_field, depth))
                    value = draw(_value(value_field, depth))
                    target = getattr(message, field.name)
                    if value_field.type == FD.TYPE_MESSAGE:
                        target[key].CopyFrom(value)
                    else:
                        target[key] = value
            elif field.is_repeated:
                values = draw(st.lists(_value(field, depth), max_size=3))
                target = getattr(message, field.name)
                if field.type == FD.TYPE_MESSAGE:
                    for value in values:
                        target.add().CopyFrom(value)
                else:
                    target.extend(values)
            elif field.type == FD.TYPE_MESSAGE:
                getattr(message, field.name).CopyFrom(draw(_value(field, depth)))
            else:
                setattr(message, field.name, draw(_value(field, depth)))
        return message

    return build()


requests = st.one_of(
    # A well-formed message of the method's request type, with hostile field values.
    st.sampled_from(METHODS).flatmap(
        lambda m: st.tuples(st.just(m), _message(m.input_type).map(lambda x: x.SerializeToString()))
    ),
    # Bytes that are not a valid message of any type: wrong types on the wire.
    st.tuples(st.sampled_from(METHODS), st.binary(min_size=1, max_size=512)),
)


def _call(
    channel: grpc.Channel, method: descriptor.MethodDescriptor, body: bytes
) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        # No serializers: the body goes on the wire as it is.
        if method.server_streaming:
            stream: Any = channel.unary_stream(path)(body, timeout=5)  # type: ignore[arg-type]
            for _ in stream:
                stream.cancel()  # the current state is enough: it was accepted
                break
        else:
            channel.unary_unary(path)(body, timeout=10)  # type: ignore[arg-type]
    except grpc.RpcError as error:
        code = error.code()
        return grpc.StatusCode.OK if code == grpc.StatusCode.CANCELLED else code
    return grpc.StatusCode.OK


def _fuzz(address: str) -> dict[str, int]:
    seen: dict[str, int] = {}
    with grpc.insecure_channel(
        address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(requests)
        def one(request: tuple[descriptor.MethodDescriptor, bytes]) -> None:
            method, body = request
            code = _call(channel, method, body)
            seen[code.name] = seen.get(code.name, 0) + 1
            if len(body) > MAX_MESSAGE_BYTES:
                # Refused by gRPC itself before any handler runs, with the canonical code for
                # a message over the server's size limit.
                assert (
                    code == grpc.StatusCode.RESOURCE_EXHAUSTED
                ), f"{method.full_name}: {code.name}"
            else:
                assert code in ALLOWED, f"{method.full_name} ({len(body)} bytes): {code.name}"

        one()
    return seen


async def test_thousands_of_bad_requests_get_client_errors_and_the_server_stays_up(
    stack: Stack,
) -> None:
    seen = await asyncio.to_thread(_fuzz, stack.service_address)
    print(f"{sum(seen.values())} requests: {seen}")
    assert sum(seen.values()) >= EXAMPLES
    assert stack.service.running
    # A normal request is served as usual afterwards.
    listed = await flows.list_executions(stack.service_address)
    assert isinstance(listed, list)
    assert "Traceback" not in stack.service.log_text()
