"""A ticket desk as an MCP server (stdio by default, streamable HTTP with --port): the demo's tools.

`add_comment` appends one JSON line per call to the file named by TICKETS_COMMENTS_FILE, so a test
can count a tool's side effects (exactly once, or not at all); a call that repeats an earlier
call's idempotency key (the request's `_meta`) adds nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

COMMENTS_FILE_ENV = "TICKETS_COMMENTS_FILE"
# Where the Stigmer service puts a tool call's idempotency key in the request's `_meta`
# (backend/stigmer_service/tools/mcp.py; the example does not import the service).
IDEMPOTENCY_META_KEY = "io.stigmer/idempotency-key"

TICKETS: dict[str, dict[str, str]] = {
    "T-1": {"title": "Checkout fails with a 502", "status": "open", "priority": "high"},
    "T-2": {"title": "Typo on the pricing page", "status": "open", "priority": "low"},
    "T-3": {"title": "Export to CSV times out", "status": "closed", "priority": "medium"},
}


def lookup_ticket(id: str) -> str:
    """Return a ticket's title, status and priority as JSON."""
    ticket = TICKETS.get(id)
    if ticket is None:
        raise ToolError(f"no ticket {id!r}")
    return json.dumps({"id": id, **ticket}, sort_keys=True)


def add_comment(id: str, text: str, ctx: Context) -> str:
    """Add a comment to a ticket."""
    if id not in TICKETS:
        raise ToolError(f"no ticket {id!r}")
    path = os.environ.get(COMMENTS_FILE_ENV)
    if not path:
        raise ToolError(f"{COMMENTS_FILE_ENV} is not set: nowhere to keep comments")
    answer = f"comment added to {id}"
    # A repeated call (the caller retried after losing our answer) carries the same key: the
    # comment is added once, and the repeat gets the same answer.
    key = str((ctx.request_context.meta or {}).get(IDEMPOTENCY_META_KEY) or "")
    keys = pathlib.Path(path + ".keys")
    if key and keys.exists() and key in keys.read_text(encoding="utf-8").splitlines():
        return answer
    with pathlib.Path(path).open("a", encoding="utf-8") as comments:
        comments.write(json.dumps({"id": id, "text": text}, sort_keys=True) + "\n")
    if key:
        with keys.open("a", encoding="utf-8") as seen:
            seen.write(key + "\n")
    return answer


def link_ticket(id: str, related: str) -> str:
    """Link a new ticket to a known one (an incident), so that whoever works on one sees the other."""
    if id not in TICKETS:
        raise ToolError(f"no ticket {id!r}")
    # The example desk keeps no links: the demo gates this call on a person's approval (a
    # change to the desk), and the answer is what the model hears once it ran.
    return f"{related} linked to {id}"


def escalate_ticket(id: str) -> str:
    """Page the on-call engineer about a ticket (the pager is always down: a tool that fails)."""
    raise ToolError(f"cannot escalate {id}: the pager service is unavailable")


def build() -> MCPServer:
    """The server with its tools. Built when it runs, not at import: building an MCPServer
    configures the root logger (a rich handler), which an importing process (a test, a worker
    with workflow sandboxes) must not get."""
    server = MCPServer(
        "tickets", instructions="Look up support tickets, comment on them and link them."
    )
    for tool in (lookup_ticket, add_comment, escalate_ticket, link_ticket):
        server.tool()(tool)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, help="serve streamable HTTP on 127.0.0.1:PORT/mcp")
    args = parser.parse_args()
    server = build()
    if args.port is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
