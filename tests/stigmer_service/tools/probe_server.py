"""A stdio MCP server that misbehaves on request: the tests' probe of what a server sees and can do.

PROBE_PID_FILE: write this process's id there first. PROBE_HANG_AT_START: never serve, and
ignore SIGTERM (a server only SIGKILL stops).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import time

import anyio
from mcp.server.mcpserver import MCPServer

PID_FILE_ENV = "PROBE_PID_FILE"
HANG_AT_START_ENV = "PROBE_HANG_AT_START"

server: MCPServer = MCPServer("probe")


@server.tool()
def environment() -> str:
    """This process's environment, as a JSON object."""
    return json.dumps(dict(os.environ), sort_keys=True)


@server.tool()
async def sleep(seconds: float) -> str:
    """Answer after `seconds`."""
    await anyio.sleep(seconds)
    return "awake"


@server.tool()
def long_text(chars: int) -> str:
    """A text of `chars` characters."""
    return "x" * chars


def main() -> None:
    if path := os.environ.get(PID_FILE_ENV):
        pathlib.Path(path).write_text(str(os.getpid()), encoding="utf-8")
    if os.environ.get(HANG_AT_START_ENV):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(60)
    server.run()


if __name__ == "__main__":
    main()
