"""The example ticket desk (examples/mcp/tickets_server.py) as an agent's stdio MCP server.

One way for tests to give an agent the desk, and the runtime env an execution hands it: the
server's Python must import the MCP SDK and this repo (PYTHONPATH), and `add_comment` appends a
line to the file named by TICKETS_COMMENTS_FILE, so a test counts the tool's side effects there.

The server's module is named, not imported: its process is the child's, not the test's. BUILD
names the file as a dependency. (The module builds its MCPServer only when it runs: building one
configures the root logger with a rich handler, which broke workflow sandboxes in an importing
process.)
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
from typing import Any

from ai.stigmer.agentic.agent.v1 import spec_pb2 as agent_spec_pb2

# What the stdio server's Python needs to import the SDK and this repo: this process's path.
PYTHONPATH = os.pathsep.join(p for p in sys.path if p)
# examples/mcp/tickets_server.py: its module and its COMMENTS_FILE_ENV.
SERVER_MODULE = "examples.mcp.tickets_server"
COMMENTS_FILE_ENV = "TICKETS_COMMENTS_FILE"


def stdio_server(name: str = "tickets", **fields: Any) -> agent_spec_pb2.McpServer:
    """The desk over stdio, run by this Python, given the two env values it needs by name."""
    return agent_spec_pb2.McpServer(
        name=name,
        stdio=agent_spec_pb2.StdioTransport(
            command=sys.executable,
            args=["-m", SERVER_MODULE],
            env=["PYTHONPATH", COMMENTS_FILE_ENV],
        ),
        **fields,
    )


def runtime_env(comments: pathlib.Path) -> dict[str, str]:
    """The (non-secret) env values an execution passes for `stdio_server`."""
    return {"PYTHONPATH": PYTHONPATH, COMMENTS_FILE_ENV: str(comments)}


def comments(path: pathlib.Path) -> list[dict[str, str]]:
    """Every comment `add_comment` wrote, in order (none when the file was never created)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
