"""An agent's MCP servers as tools: list a server's tools and call one, one session per call.

Every call opens its own session and closes it (stdio: starts the server and stops it), because
each runs inside a Temporal activity of its own and no state may outlive it. The SDK's client
does the protocol; this module decides what the server sees (its environment), how long a call
may take, how much of the answer is kept, and which failures are worth another attempt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import IO, Any, TypeVar, cast

import anyio
import httpx2
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp import types as mcp_types
from mcp.client.streamable_http import streamable_http_client

from backend.stigmer_service.tools import content

STDIO = "stdio"
HTTP = "http"
TRANSPORTS = (STDIO, HTTP)

# A server listing more pages than this is not listed further (a server looping on its cursor).
MAX_TOOL_PAGES = 20
# How much of a failed stdio server's stderr an error quotes: enough for a traceback's last lines.
STDERR_TAIL_BYTES = 2000


@dataclasses.dataclass(frozen=True)
class McpServer:
    """One entry of an agent's `mcp_servers`: where the server is and which of its tools to offer."""

    name: str
    transport: str  # "stdio" | "http" (streamable HTTP)
    command: str = ""  # stdio
    args: tuple[str, ...] = ()
    # stdio: the only variables the child gets besides the SDK's fixed safe list (PATH, HOME,
    # USER, LOGNAME, SHELL, TERM); never the service's own environment.
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    url: str = ""  # http
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)  # http
    enabled_tools: tuple[str, ...] = ()  # Empty: every tool the server lists.

    def offers(self, tool: str) -> bool:
        return not self.enabled_tools or tool in self.enabled_tools


@dataclasses.dataclass(frozen=True)
class ToolSpec:
    """A tool an MCP server offers, as the model is told about it."""

    server: str
    name: str
    description: str
    input_schema: dict[str, Any]  # JSON Schema of the arguments.


@dataclasses.dataclass(frozen=True)
class ToolResult:
    """What a tool answered: its text (other content summarised), and whether it reported failure."""

    text: str
    is_error: bool


class ToolError(Exception):
    """The server could not be started, reached or understood, or did not answer in time.

    `retryable`: another attempt may succeed (a timeout, a refused connection), as opposed to a
    configuration that cannot work (no such command, a tool not enabled). `call_sent`: the tool
    call had been sent when it failed, so the tool may have run (its side effects with it).
    """

    def __init__(self, message: str, *, retryable: bool, call_sent: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.call_sent = call_sent


async def list_tools(server: McpServer, timeout: float) -> list[ToolSpec]:
    """The server's tools that `server.enabled_tools` lets through, in the server's order."""
    found: list[ToolSpec] = []
    async with _session(server, timeout, _Progress()) as session:
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            found.extend(
                ToolSpec(
                    server=server.name,
                    name=tool.name,
                    description=tool.description or "",
                    input_schema=dict(tool.input_schema),
                )
                for tool in page.tools
                if server.offers(tool.name)
            )
            cursor = page.next_cursor
            if not cursor:
                break
    return found


# The `_meta` key of a tool call's idempotency key: the same for every attempt of one call, so a
# server that keeps it can answer a repeated call without repeating its side effect.
IDEMPOTENCY_META_KEY = "io.stigmer/idempotency-key"


async def call_tool(
    server: McpServer,
    name: str,
    arguments: dict[str, Any],
    timeout: float,
    idempotency_key: str = "",
) -> ToolResult:
    """Call one tool. A tool that reports failure is a result (`is_error`), not an exception.
    `idempotency_key` goes to the server in the request's `_meta` (IDEMPOTENCY_META_KEY)."""
    if not server.offers(name):
        raise ToolError(
            f"tool {name!r} is not enabled on MCP server {server.name!r}", retryable=False
        )
    progress = _Progress()
    async with _session(server, timeout, progress) as session:
        progress.call_sent = True
        try:
            # An open map (extra items allowed), which mypy's TypedDict cannot spell.
            meta = cast(mcp_types.RequestParamsMeta, {IDEMPOTENCY_META_KEY: idempotency_key})
            result = await session.call_tool(
                name, arguments, meta=meta if idempotency_key else None
            )
        except MCPError as error:
            if error.code in _TRANSPORT_CODES:
                raise
            # The server answered with a protocol error (unknown tool, invalid arguments): the
            # model can read it and correct its call, as with a tool's own failure.
            return ToolResult(
                text=content.bounded(f"MCP error {error.code}: {error}"), is_error=True
            )
        except RuntimeError as error:
            # The tool ran but its answer broke its declared output schema.
            return ToolResult(text=content.bounded(str(error)), is_error=True)
    return ToolResult(text=content.result_text(result), is_error=bool(result.is_error))


# Codes the SDK raises for the connection itself rather than for the request.
_TRANSPORT_CODES = frozenset({mcp_types.CONNECTION_CLOSED, mcp_types.REQUEST_TIMEOUT})


@dataclasses.dataclass
class _Progress:
    """How far a call got, which decides whether its failure may have let the tool run."""

    call_sent: bool = False


@contextlib.asynccontextmanager
async def _session(
    server: McpServer, timeout: float, progress: _Progress
) -> AsyncIterator[ClientSession]:
    """An initialized session with `server`, every failure (and the deadline) as a ToolError.

    `timeout` bounds everything until the session is closed; stopping a stdio server that
    outlives it (stdin closed, then SIGTERM, then SIGKILL to its process group) takes at most a
    few seconds more, and leaves no process behind.
    """
    with tempfile.TemporaryFile() as errlog:
        try:
            with anyio.fail_after(timeout):
                async with (
                    _streams(server, timeout, errlog) as (read, write),
                    ClientSession(read, write) as session,
                ):
                    await session.initialize()
                    yield session
        except ToolError:
            raise
        except Exception as error:  # Cancellation (a BaseException) stays the caller's.
            raise _tool_error(server, timeout, error, progress, errlog) from error


@contextlib.asynccontextmanager
async def _streams(server: McpServer, timeout: float, errlog: IO[bytes]) -> AsyncIterator[Any]:
    if server.transport == STDIO:
        if not server.command:
            raise ToolError(f"MCP server {server.name!r} has no command", retryable=False)
        # The SDK lays these over its fixed safe list taken from the service's environment (PATH,
        # HOME, USER, LOGNAME, SHELL, TERM) and passes nothing else of it: no service secret.
        parameters = StdioServerParameters(
            command=server.command, args=list(server.args), env=dict(server.env)
        )
        # The child's stderr goes to a file whose tail an error can quote (the SDK types it
        # TextIO, but only its file descriptor is used).
        async with stdio_client(parameters, errlog=errlog) as streams:  # type: ignore[arg-type]
            yield streams
    elif server.transport == HTTP:
        if not server.url:
            raise ToolError(f"MCP server {server.name!r} has no url", retryable=False)
        async with (
            # The call's deadline is the one that counts, not httpx2's 5 s default.
            httpx2.AsyncClient(headers=dict(server.headers), timeout=timeout) as client,
            streamable_http_client(server.url, http_client=client) as streams,
        ):
            yield streams
    else:
        raise ToolError(
            f"MCP server {server.name!r}: unknown transport {server.transport!r}"
            f" (expected one of {', '.join(TRANSPORTS)})",
            retryable=False,
        )


def _tool_error(
    server: McpServer, timeout: float, error: Exception, progress: _Progress, errlog: IO[bytes]
) -> ToolError:
    """The ToolError that `error` (maybe a group, from the SDK's task groups) means."""
    leaves = list(_leaves(error))
    where = f"MCP server {server.name!r}"
    if found := _first(leaves, ToolError):
        return found
    if _first(leaves, TimeoutError):
        message, retryable = f"{where} did not answer within {timeout:g}s", True
    elif missing := _first(leaves, FileNotFoundError) or _first(leaves, PermissionError):
        message, retryable = f"{where} cannot start {server.command!r}: {missing}", False
    elif http := _first(leaves, httpx2.HTTPStatusError):
        status = http.response.status_code
        # 4xx: the request (url, headers) is wrong and stays wrong; 5xx may pass.
        message, retryable = f"{where} answered HTTP {status}", status >= 500 or status == 429
    elif (refused := _first(leaves, MCPError)) and refused.code not in _TRANSPORT_CODES:
        # The server refused deliberately (e.g. it has no tools): asking again changes nothing.
        message, retryable = f"{where} refused: {refused}", False
    else:
        detail = "; ".join(f"{type(leaf).__name__}: {leaf}" for leaf in leaves)
        message, retryable = f"{where} failed: {detail}", True
    tail = _tail(errlog)
    if tail:
        message += f"\nserver stderr (last lines):\n{tail}"
    return ToolError(content.bounded(message), retryable=retryable, call_sent=progress.call_sent)


_E = TypeVar("_E", bound=BaseException)


def _first(leaves: list[BaseException], kind: type[_E]) -> _E | None:
    return next((leaf for leaf in leaves if isinstance(leaf, kind)), None)


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def _tail(errlog: IO[bytes]) -> str:
    errlog.flush()
    size = os.fstat(errlog.fileno()).st_size
    data = os.pread(errlog.fileno(), STDERR_TAIL_BYTES, max(0, size - STDERR_TAIL_BYTES))
    return data.decode("utf-8", errors="replace").strip()
