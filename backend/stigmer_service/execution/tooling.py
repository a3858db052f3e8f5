"""An agent's MCP servers as the tool client takes them, and their tools as the model sees them.

The one place that turns stored server definitions into `tools.mcp` clients: runtime-env values
(secrets included) are resolved here, inside an activity, and never leave it.
"""

from __future__ import annotations

import dataclasses
import re

from backend.common import secret_placeholders
from backend.stigmer_service.execution import policies
from backend.stigmer_service.execution.models import LoopToolCall
from backend.stigmer_service.providers.base import ToolSpec
from backend.stigmer_service.store import documents
from backend.stigmer_service.tools import mcp

# What a step keeps of a tool's result or error, and what goes back to the model.
RESULT_CHARS = 4096
# How long one tool listing or call may take.
TOOL_TIMEOUT = policies.TOOL_TIMEOUT
# "<server>__<tool>": OpenAI's function names allow [A-Za-z0-9_-], at most 64 characters.
_SEPARATOR = "__"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclasses.dataclass(frozen=True)
class AgentTools:
    servers: dict[str, mcp.McpServer]  # By name in the agent.
    specs: list[ToolSpec]  # Every enabled tool of every server.

    def find(self, name: str) -> ToolSpec | None:
        return next((spec for spec in self.specs if spec.name == name), None)


def wire_name(server: str, tool: str) -> str:
    return (server + _SEPARATOR + _UNSAFE.sub("_", tool))[:64]


def idempotency_key(execution_id: str, call: LoopToolCall) -> str:
    """One key per tool call, the same for each attempt: the call's step in its execution."""
    return f"{execution_id}/{call.index}"


def bounded(text: str) -> str:
    return text if len(text) <= RESULT_CHARS else text[: RESULT_CHARS - 3] + "..."


def servers(
    spec: dict[str, object], env: dict[str, str], secrets: dict[str, str]
) -> dict[str, mcp.McpServer]:
    """The agent's servers, with the env values they name and their headers' secrets resolved."""
    values = {k: v for k, v in secrets.items() if k != secret_placeholders.SEAL_ENV_NAME}
    found: dict[str, mcp.McpServer] = {}
    for record in documents.mcp_servers(spec):
        found[record.name] = mcp.McpServer(
            name=record.name,
            transport=record.transport,
            command=record.command,
            args=record.args,
            env={name: env[name] for name in record.env_names if name in env},
            url=record.url,
            headers={k: secret_placeholders.substitute_plain(v, values) for k, v in record.headers},
            enabled_tools=record.enabled_tools,
        )
    return found


def enabled(server: mcp.McpServer, tool: str) -> bool:
    return not server.enabled_tools or tool in server.enabled_tools


async def discover(found: dict[str, mcp.McpServer]) -> AgentTools:
    """Lists the enabled tools of every server; raises mcp.ToolError when one cannot list."""
    specs: list[ToolSpec] = []
    for name, server in found.items():
        for tool in await mcp.list_tools(server, TOOL_TIMEOUT):
            if enabled(server, tool.name):
                specs.append(
                    ToolSpec(
                        name=wire_name(name, tool.name),
                        description=tool.description or "",
                        parameters=dict(tool.input_schema or {}),
                        server=name,
                        tool=tool.name,
                    )
                )
    return AgentTools(found, specs)


# The arguments of a sub-agent tool, as the model is told.
SUB_AGENT_PARAMETERS: dict[str, object] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "description": "What to ask the sub-agent, in full."}
    },
    "required": ["message"],
}


def sub_agent_tool(name: str, description: str) -> ToolSpec:
    """A sub-agent as a tool of the model's: "agents__<name>", called with a message."""
    return ToolSpec(
        name=wire_name(documents.SUB_AGENTS_SERVER, name),
        description=description,
        parameters=dict(SUB_AGENT_PARAMETERS),
        server=documents.SUB_AGENTS_SERVER,
        tool=name,
    )
