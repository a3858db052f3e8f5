"""The example ticket desk (examples/mcp/tickets_server.py) over streamable HTTP: a child process a
test starts on a free loopback port and stops after, and the agent's `http` MCP server naming it.

The stdio form of the same desk is tests/support/tickets.py, whose module name this one reuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import sys
from collections.abc import AsyncIterator, Mapping, Sequence

from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2

from backend.common.temporal_dev_server import free_port
from tests.support import tickets
from tests.support.processes import Process, child_env, wait_ready

# The desk serves its MCP endpoint at this path (the MCP SDK's default for streamable HTTP).
MCP_PATH = "/mcp"


@contextlib.asynccontextmanager
async def serving(log_dir: pathlib.Path) -> AsyncIterator[str]:
    """The desk over HTTP until the block ends; yields its MCP endpoint's URL."""
    port = free_port()
    process = Process(
        "tickets-http",
        [sys.executable, "-m", tickets.SERVER_MODULE, "--port", str(port)],
        child_env(),
        log_dir / "tickets-http.log",
    )
    process.start()
    try:
        await wait_ready(process, lambda: _accepts(port), f"HTTP on port {port}", timeout=30)
        yield f"http://127.0.0.1:{port}{MCP_PATH}"
    finally:
        process.stop()


def http_server(
    name: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    enabled_tools: Sequence[str] = (),
) -> agent_spec_pb2.McpServer:
    """An agent's MCP server at `url`, sending `headers` (which may hold `{{secret:NAME}}`)."""
    return agent_spec_pb2.McpServer(
        name=name,
        http=agent_spec_pb2.HttpTransport(url=url, headers=dict(headers or {})),
        enabled_tools=list(enabled_tools),
    )


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True
