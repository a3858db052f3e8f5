"""Request checks shared by the servicers; each failure names the offending field.

Two kinds live here. Field checks (`required`, `slug`, `model`, `update_mask`) are called by
the handlers where a field means something. `checked` wraps every handler of a servicer so that
whole-request checks run before any handler reads a field: no string carries a NUL (PostgreSQL
refuses it in text), no string or integer exceeds the column that stores it (the limits are read
from `store/tables.py`), every Duration is one protobuf can represent and every double is finite.
A request that passes cannot make the database or a conversion raise, which would be INTERNAL.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import sqlalchemy as sa
from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import spec_pb2 as execution_spec_pb2
from ai.stigmer.agentic.agentexecution.v1 import status_pb2 as execution_status_pb2
from ai.stigmer.commons.apiresource import metadata_pb2
from google.protobuf import descriptor, duration_pb2, field_mask_pb2
from google.protobuf.message import Message

from backend.stigmer_service import ids
from backend.stigmer_service.errors import InvalidArgument
from backend.stigmer_service.providers import registry
from backend.stigmer_service.providers.base import ModelCallError
from backend.stigmer_service.store import tables
from backend.stigmer_service.store.documents import SUB_AGENTS_SERVER

# protobuf's own bounds of a Duration (about 10,000 years), as in duration.proto.
MAX_DURATION_SECONDS = 315_576_000_000
_NANOS = 999_999_999
# SQLAlchemy's Integer is a 32-bit column on PostgreSQL.
_INT32_MAX = 2**31 - 1

_FD = descriptor.FieldDescriptor


def _length(column: sa.Column[Any]) -> int:
    length = getattr(column.type, "length", None)
    assert isinstance(length, int), f"{column} has no length"
    return length


# The request fields stored in a column of limited length, by protobuf field: longer values
# would be cut (SQLite stores them, PostgreSQL refuses them), so they are refused here.
_MAX_LENGTH: dict[str, int] = {
    metadata_pb2.ApiResourceMetadata.DESCRIPTOR.fields_by_name["org"].full_name: _length(
        tables.agents.c.org
    ),
    metadata_pb2.ApiResourceMetadata.DESCRIPTOR.fields_by_name["name"].full_name: _length(
        tables.agents.c.name
    ),
    metadata_pb2.ApiResourceMetadata.DESCRIPTOR.fields_by_name["slug"].full_name: _length(
        tables.agents.c.slug
    ),
    execution_spec_pb2.AgentExecutionSpec.DESCRIPTOR.fields_by_name["session_id"].full_name: (
        _length(tables.executions.c.session_id)
    ),
    execution_spec_pb2.AgentExecutionSpec.DESCRIPTOR.fields_by_name["idempotency_key"].full_name: (
        _length(tables.executions.c.idempotency_key)
    ),
    execution_status_pb2.ExecutionError.DESCRIPTOR.fields_by_name["type"].full_name: _length(
        tables.executions.c.error_type
    ),
}
assert _length(tables.executions.c.org) == _length(tables.agents.c.org)
assert _length(tables.executions.c.name) == _length(tables.agents.c.name)

# Integer request fields compared with or stored in a 32-bit column.
_INT32_FIELDS = {
    metadata_pb2.ApiResourceMetadata.DESCRIPTOR.fields_by_name["version"].full_name,
}


def required(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidArgument(field, "must not be empty")
    return value


def model(value: str, field: str) -> None:
    if not value:
        return
    try:
        registry.resolve(value)
    except ModelCallError as error:
        raise InvalidArgument(field, str(error)) from None


def slug(value: str, field: str) -> str:
    if not ids.SLUG_PATTERN.match(value):
        raise InvalidArgument(field, f"{value!r} is not a slug (lowercase letters, digits, dashes)")
    limit = _length(tables.agents.c.slug)
    if len(value) > limit:
        raise InvalidArgument(field, f"must be at most {limit} characters")
    return value


# The bounds of an agent's tools (AgentSpec.mcp_servers, max_steps), as spec.proto states them.
MAX_STEPS_LIMIT = 50
MAX_MCP_SERVERS = 8
MAX_SUB_AGENTS = 8
MAX_ENABLED_TOOLS = 64
MAX_TRANSPORT_ITEMS = 32  # stdio args and env names.
MAX_HEADERS = 16
MAX_TOOL_TEXT = 2048  # A command, an argument, a URL, a header, a tool name.
_SERVER_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_URL = re.compile(r"^https?://[^/\s]+")


def _bounded(values: Iterable[str], limit: int, field: str) -> None:
    items = list(values)
    if len(items) > limit:
        raise InvalidArgument(field, f"must have at most {limit} entries")
    for index, item in enumerate(items):
        if len(item) > MAX_TOOL_TEXT:
            raise InvalidArgument(
                f"{field}[{index}]", f"must be at most {MAX_TOOL_TEXT} characters"
            )


def agent_tools(spec: agent_spec_pb2.AgentSpec, field: str) -> None:
    """An agent's `max_steps` and `mcp_servers` (at `field`, e.g. `agent.spec`): names, sizes
    and counts within the bounds spec.proto states."""
    if not 0 <= spec.max_steps <= MAX_STEPS_LIMIT:
        raise InvalidArgument(f"{field}.max_steps", f"must be between 0 and {MAX_STEPS_LIMIT}")
    if len(spec.mcp_servers) > MAX_MCP_SERVERS:
        raise InvalidArgument(
            f"{field}.mcp_servers", f"must have at most {MAX_MCP_SERVERS} entries"
        )
    seen: set[str] = set()
    for index, server in enumerate(spec.mcp_servers):
        at = f"{field}.mcp_servers[{index}]"
        if not _SERVER_NAME.match(server.name):
            raise InvalidArgument(
                f"{at}.name", "must be 1-32 lowercase letters, digits and dashes, not dash-first"
            )
        if server.name in seen:
            raise InvalidArgument(f"{at}.name", f"{server.name!r} names another server too")
        if server.name == SUB_AGENTS_SERVER:
            raise InvalidArgument(f"{at}.name", f"{SUB_AGENTS_SERVER!r} is reserved for sub-agents")
        seen.add(server.name)
        transport = server.WhichOneof("transport")
        if transport == "stdio":
            required(server.stdio.command, f"{at}.stdio.command")
            _bounded([server.stdio.command], 1, f"{at}.stdio.command")
            _bounded(server.stdio.args, MAX_TRANSPORT_ITEMS, f"{at}.stdio.args")
            _bounded(server.stdio.env, MAX_TRANSPORT_ITEMS, f"{at}.stdio.env")
            for position, name in enumerate(server.stdio.env):
                if not _ENV_NAME.match(name):
                    raise InvalidArgument(f"{at}.stdio.env[{position}]", "is not a variable name")
        elif transport == "http":
            if not _URL.match(server.http.url) or len(server.http.url) > MAX_TOOL_TEXT:
                raise InvalidArgument(f"{at}.http.url", "must be an http(s) URL")
            if len(server.http.headers) > MAX_HEADERS:
                raise InvalidArgument(f"{at}.http.headers", f"must have at most {MAX_HEADERS}")
            _bounded(server.http.headers.values(), MAX_HEADERS, f"{at}.http.headers")
        else:
            raise InvalidArgument(f"{at}.transport", "set stdio or http")
        _bounded(server.enabled_tools, MAX_ENABLED_TOOLS, f"{at}.enabled_tools")
    sub_agents(spec, f"{field}.sub_agents")
    tools = {name: set[str]() for name in seen}  # Empty: any tool the server lists.
    if spec.sub_agents:
        tools[SUB_AGENTS_SERVER] = {sub.name for sub in spec.sub_agents}
    tool_approval(spec, tools, f"{field}.tool_approval")


def sub_agents(spec: agent_spec_pb2.AgentSpec, field: str) -> None:
    """An agent's `sub_agents`: unique names, each naming an agent (resolved when called)."""
    if len(spec.sub_agents) > MAX_SUB_AGENTS:
        raise InvalidArgument(field, f"must have at most {MAX_SUB_AGENTS} entries")
    names: set[str] = set()
    for index, sub in enumerate(spec.sub_agents):
        at = f"{field}[{index}]"
        if not _SERVER_NAME.match(sub.name):
            raise InvalidArgument(
                f"{at}.name", "must be 1-32 lowercase letters, digits and dashes, not dash-first"
            )
        if sub.name in names:
            raise InvalidArgument(f"{at}.name", f"{sub.name!r} names another sub-agent too")
        names.add(sub.name)
        required(sub.agent, f"{at}.agent")
        _bounded([sub.agent, sub.description], 2, at)


# The bounds of AgentSpec.tool_approval's timeout, as spec.proto states them.
MIN_APPROVAL_TIMEOUT = datetime.timedelta(seconds=1)
MAX_APPROVAL_TIMEOUT = datetime.timedelta(days=7)


def tool_approval(spec: agent_spec_pb2.AgentSpec, servers: dict[str, set[str]], field: str) -> None:
    """An agent's `tool_approval`: listed tools are "<server>.<tool>" of its own servers (or
    "agents.<name>" of its sub-agents), and only with TOOL_APPROVAL_MODE_LISTED; the timeout
    within its bounds. `servers`: the known tools of each server, empty when any may be."""
    approval = spec.tool_approval
    listed = approval.mode == agent_spec_pb2.TOOL_APPROVAL_MODE_LISTED
    if listed and not approval.tools:
        raise InvalidArgument(f"{field}.tools", "must name the gated tools with mode LISTED")
    if approval.tools and not listed:
        raise InvalidArgument(f"{field}.tools", "must be empty unless the mode is LISTED")
    _bounded(approval.tools, MAX_ENABLED_TOOLS, f"{field}.tools")
    for index, name in enumerate(approval.tools):
        server, dot, tool = name.partition(".")
        known = servers.get(server)
        if not dot or not tool or known is None or (known and tool not in known):
            raise InvalidArgument(
                f"{field}.tools[{index}]",
                "must be <server>.<tool> of one of the agent's servers, or agents.<name> of one "
                "of its sub-agents",
            )
    if approval.HasField("timeout"):
        timeout = approval.timeout.ToTimedelta()
        if not MIN_APPROVAL_TIMEOUT <= timeout <= MAX_APPROVAL_TIMEOUT:
            raise InvalidArgument(f"{field}.timeout", "must be between 1s and 7 days")


def update_mask(
    paths: Iterable[str], resource: descriptor.Descriptor, updatable: Iterable[str], field: str
) -> list[str]:
    """The mask's paths, each a field of `resource` at or under one of `updatable`; merging a
    path into a map entry or to a field that does not exist would fail inside protobuf."""
    allowed = tuple(updatable)
    checked = list(paths)
    for path in checked:
        inside = any(path == p or path.startswith(p + ".") for p in allowed)
        if not inside or not field_mask_pb2.FieldMask(paths=[path]).IsValidForDescriptor(resource):
            raise InvalidArgument(field, f"{path!r} is not an updatable field")
    return checked


def _duration(value: duration_pb2.Duration, field: str) -> None:
    seconds, nanos = value.seconds, value.nanos
    if abs(seconds) > MAX_DURATION_SECONDS or abs(nanos) > _NANOS:
        raise InvalidArgument(field, f"must be within ±{MAX_DURATION_SECONDS} seconds")
    if (seconds > 0 and nanos < 0) or (seconds < 0 and nanos > 0):
        raise InvalidArgument(field, "seconds and nanos must have the same sign")


def _scalar(field_descriptor: descriptor.FieldDescriptor, value: Any, field: str) -> None:
    name = field_descriptor.full_name
    if field_descriptor.type == _FD.TYPE_STRING:
        if "\x00" in value:
            raise InvalidArgument(field, "must not contain NUL characters")
        limit = _MAX_LENGTH.get(name)
        if limit is not None and len(value) > limit:
            raise InvalidArgument(field, f"must be at most {limit} characters")
    elif field_descriptor.type in (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT):
        if not math.isfinite(value):
            raise InvalidArgument(field, "must be a finite number")
    elif name in _INT32_FIELDS and not 0 <= value <= _INT32_MAX:
        raise InvalidArgument(field, f"must be between 0 and {_INT32_MAX}")


def _walk(message: Message, prefix: str) -> None:
    if message.DESCRIPTOR.full_name == duration_pb2.Duration.DESCRIPTOR.full_name:
        _duration(message, prefix.rstrip("."))  # type: ignore[arg-type]
        return
    for field_descriptor, value in message.ListFields():
        field = prefix + field_descriptor.name
        entry = field_descriptor.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            for key, item in value.items():
                _scalar(key_field, key, f"{field} (a key)")
                if value_field.message_type is not None:
                    _walk(item, f"{field}[{key!r}].")
                else:
                    _scalar(value_field, item, f"{field}[{key!r}]")
        elif field_descriptor.is_repeated:
            for index, item in enumerate(value):
                if entry is not None:
                    _walk(item, f"{field}[{index}].")
                else:
                    _scalar(field_descriptor, item, f"{field}[{index}]")
        elif entry is not None:
            _walk(value, field + ".")
        else:
            _scalar(field_descriptor, value, field)


def request(message: Message) -> None:
    """The whole-request checks (see the module docstring); the first failure is raised."""
    _walk(message, "")


_Servicer = TypeVar("_Servicer", bound=type)


def _checking(handler: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(handler):

        @functools.wraps(handler)
        async def stream(self: Any, message: Message, context: Any) -> Any:
            request(message)
            async for response in handler(self, message, context):
                yield response

        return stream

    @functools.wraps(handler)
    async def unary(self: Any, message: Message, context: Any) -> Any:
        request(message)
        return await handler(self, message, context)

    return unary


def checked(servicer: _Servicer) -> _Servicer:
    """Class decorator: every RPC handler the servicer defines runs `request` first."""
    for name, handler in list(vars(servicer).items()):
        rpc = inspect.iscoroutinefunction(handler) or inspect.isasyncgenfunction(handler)
        if rpc and name[:1].isupper():
            setattr(servicer, name, _checking(handler))
    return servicer
