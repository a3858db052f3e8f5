"""Hypothesis strategies for requests to every RPC of the service: well-formed messages whose
ids, slugs and sessions mostly name real resources (so that requests pass the first lookups and
reach the checks and writes behind them), mixed with hostile values, and undecodable bytes.

A reference to a real resource is drawn as a marker (`@agent#3`) and replaced with a live id
just before sending (`resolve`), because the resources change as the run creates and deletes
them."""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ai.stigmer.agentic.agent.v1 import command_pb2 as agent_command_pb2
from ai.stigmer.agentic.agent.v1 import query_pb2 as agent_query_pb2
from ai.stigmer.agentic.agentexecution.v1 import command_pb2, query_pb2
from google.protobuf import descriptor, duration_pb2, message_factory
from google.protobuf.message import Message
from hypothesis import strategies as st

from tests.support.agents import OFFLINE_MODEL, ORG

SERVICES = [
    service
    for module in (agent_command_pb2, agent_query_pb2, command_pb2, query_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
]
METHODS = [method for service in SERVICES for method in service.methods]

FD = descriptor.FieldDescriptor
MARKER = re.compile(r"@(agent|execution|session|slug|page)#([0-9]+)")

# Strings a client might get wrong: empty, unicode, control characters, and very long ones.
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "a\x00b", "aex-" + "0" * 32, "../../etc/passwd", "${ .x }"]),
    st.builds(lambda n, c: c * n, st.integers(60, 600), st.sampled_from("ax\x00é")),
    st.builds(lambda n, c: c * n, st.integers(1_000, 300_000), st.sampled_from("a\x00é🙂")),
)
numbers = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, -1, 1, 2**31 - 1]))
floats = st.floats(allow_nan=True, allow_infinity=True)


def ref(kind: str) -> st.SearchStrategy[str]:
    return st.integers(0, 10_000).map(lambda n: f"@{kind}#{n}")


def often(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`common` four times in five (one_of picks a branch uniformly; flatmap would cost more)."""
    return st.one_of(common, common, common, common, rare)


slugs = st.from_regex(r"[a-z][a-z0-9-]{0,12}[a-z0-9]", fullmatch=True)
durations = st.one_of(
    st.builds(duration_pb2.Duration, seconds=st.integers(0, 600), nanos=st.integers(0, 10**9 - 1)),
    st.builds(
        duration_pb2.Duration,
        seconds=st.sampled_from([2**62, -(2**62), 315_576_000_001, 5, -5, 0, -1]),
        nanos=st.sampled_from([0, -1, 1, 10**9, -(10**9), 999_999_999]),
    ),
)
mask_paths = st.lists(
    st.sampled_from(
        [
            "metadata.name",
            "metadata.labels",
            "metadata.annotations",
            "spec",
            "spec.model",
            "spec.instructions",
            "spec.model_options.timeout",
            "spec.model_options.extra",
            "metadata.labels.team",
            "spec.bogus",
            "spec.model_options.extra.k",
            "metadata.org",
            "status",
            "",
            "spec.",
        ]
    ),
    max_size=3,
)


def _token(document: str) -> str:
    return base64.urlsafe_b64encode(document.encode()).decode()


page_tokens = st.one_of(
    st.just(""),
    ref("page"),  # a next_page_token the service gave
    # Forged cursors: dates at the ends of the calendar, ids that are not ours.
    st.sampled_from(
        [
            _token('{"t": "9999-12-31T23:59:59-14:00", "i": "aex-1"}'),
            _token('{"t": "0001-01-01T00:00:00+14:00", "i": "aex-1"}'),
            _token('{"t": "2024-01-01T00:00:00+00:00", "i": "a\\u0000b"}'),
            _token('{"t": "2024-01-01T00:00:00", "i": "aex-1"}'),
            _token('{"t": 5, "i": ["x"]}'),
            _token("[]"),
        ]
    ),
    st.integers(0, 200).map(str),
    st.sampled_from([str(2**63), str(2**64), "9" * 40, "-1", " 5", "+5", "٣", "5_0"]),
    texts,
)

# String fields by name: what a real client would put there, with hostile values now and then.
_STRINGS: Mapping[str, Callable[[str], st.SearchStrategy[str]]] = {
    "id": lambda kind: often(ref(kind), texts),
    "agent_id": lambda kind: often(ref("agent"), texts),
    "session_id": lambda kind: st.one_of(ref("session"), st.just(""), texts),
    "org": lambda kind: often(st.just(ORG), st.one_of(st.just(""), texts)),
    "slug": lambda kind: st.one_of(ref("slug"), slugs, texts),
    "name": lambda kind: often(slugs, texts),
    "model": lambda kind: often(
        st.sampled_from(["", OFFLINE_MODEL]), st.sampled_from(["nope/x", "gpt"])
    ),
    "model_name": lambda kind: often(st.sampled_from(["", OFFLINE_MODEL]), st.just("nope/x")),
    "message": lambda kind: often(st.sampled_from(["hi", "hello"]), texts),
    "content": lambda kind: often(st.just("an answer"), texts),
    "page_token": lambda kind: page_tokens,
    "idempotency_key": lambda kind: often(st.sampled_from(["", "key-1", "key-2"]), texts),
    "type": lambda kind: often(st.sampled_from(["", "ModelError"]), texts),
}
# Fields a request is pointless without: present nearly always.
_KEY_FIELDS = {"id", "agent_id", "message", "metadata", "spec", "execution", "agent", "ref", "org"}


def _scalar(field: descriptor.FieldDescriptor, kind: str) -> st.SearchStrategy[Any]:
    if field.type == FD.TYPE_STRING:
        named = _STRINGS.get(field.name)
        return named(kind) if named else texts
    if field.type == FD.TYPE_BYTES:
        # A callback token now and then (its delivery then fails in the background).
        return often(st.just(b""), st.binary(max_size=4096))
    if field.type == FD.TYPE_BOOL:
        return st.booleans()
    if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return often(st.floats(0, 2), floats)
    if field.type == FD.TYPE_ENUM:
        assert field.enum_type is not None
        defined = [v.number for v in field.enum_type.values]
        return often(st.sampled_from(defined), numbers)
    if field.type in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return often(st.integers(0, 3), st.integers(-(2**63), 2**63 - 1))
    if field.type in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if field.type in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    return often(st.integers(0, 100), numbers)


def _value(field: descriptor.FieldDescriptor, kind: str, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return message(field.message_type, kind, depth + 1)
    return _scalar(field, kind)


@functools.cache
def message(
    message_type: descriptor.Descriptor, kind: str, depth: int = 0
) -> st.SearchStrategy[Message]:
    """A message of `message_type`; `kind` ("agent" or "execution") is what an `id` names.
    Cached: building a composite strategy costs far more than drawing from it."""
    cls = message_factory.GetMessageClass(message_type)
    if message_type.full_name == duration_pb2.Duration.DESCRIPTOR.full_name:
        return durations
    if message_type.full_name == "google.protobuf.FieldMask":
        return st.builds(lambda paths: cls(paths=paths), mask_paths)
    if depth > 3:
        return st.just(cls())

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        built = cls()
        for field in message_type.fields:
            if not draw(st.integers(0, 9)) < (9 if field.name in _KEY_FIELDS else 4):
                continue
            entry = field.message_type
            if entry is not None and entry.GetOptions().map_entry:
                value_field = entry.fields_by_name["value"]
                target = getattr(built, field.name)
                for _ in range(draw(st.integers(0, 2))):
                    key = draw(often(st.sampled_from(["team", "k"]), texts))
                    value = draw(_value(value_field, kind, depth))
                    if value_field.message_type is not None:
                        target[key].CopyFrom(value)
                    else:
                        target[key] = value
            elif field.is_repeated:
                values = draw(st.lists(_value(field, kind, depth), max_size=3))
                target = getattr(built, field.name)
                if entry is not None:
                    for value in values:
                        target.add().CopyFrom(value)
                else:
                    target.extend(values)
            elif entry is not None:
                getattr(built, field.name).CopyFrom(draw(_value(field, kind, depth)))
            else:
                setattr(built, field.name, draw(_value(field, kind, depth)))
        return built

    return build()


def _kind(method: descriptor.MethodDescriptor) -> str:
    return "agent" if ".agent.v1." in method.full_name else "execution"


# (method, message or undecodable bytes)
Request = tuple[descriptor.MethodDescriptor, Message | bytes]

_TYPED = [st.tuples(st.just(m), message(m.input_type, _kind(m))) for m in METHODS]

requests: st.SearchStrategy[Request] = often(
    # Mostly a message of the method's request type, mostly plausible.
    st.one_of(_TYPED),
    # Else bytes that are not a valid message of the type: wrong types on the wire.
    st.tuples(st.sampled_from(METHODS), st.binary(min_size=1, max_size=512)),
)


def resolve(request: Message, live: Mapping[str, Sequence[str]]) -> None:
    """Replaces every marker in the message's strings with a live id of its kind (in place)."""
    for field, value in request.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is not None:
                for item in value.values():
                    resolve(item, live)
        elif field.message_type is not None:
            for item in value if field.is_repeated else [value]:
                resolve(item, live)
        elif field.type == FD.TYPE_STRING and not field.is_repeated:
            found = MARKER.fullmatch(value)
            if found:
                pool = live.get(found.group(1)) or [""]
                setattr(request, field.name, pool[int(found.group(2)) % len(pool)])
