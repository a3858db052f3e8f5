"""The JSON columns' documents (proto JSON, as the API wrote them) read into typed records, once."""

from __future__ import annotations

import datetime
from typing import Any

from google.protobuf import duration_pb2

from backend.stigmer_service.store.records import (
    CallerRef,
    McpServerRecord,
    ModelOptions,
    SubAgentRecord,
)

# The model turns of an agent with tools whose spec sets no `maxSteps`.
DEFAULT_MAX_STEPS = 8


def duration(value: Any) -> datetime.timedelta | None:
    """A proto-JSON Duration ("1.5s"); None when absent."""
    if value is None:
        return None
    parsed = duration_pb2.Duration()
    parsed.FromJsonString(str(value))
    return parsed.ToTimedelta()


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def caller(document: dict[str, Any] | None) -> CallerRef:
    """A CallerInfo document."""
    document = document or {}
    return CallerRef(
        workflow_id=str(document.get("workflowId", "")),
        run_id=str(document.get("runId", "")),
        activity_id=str(document.get("activityId", "")),
        namespace=str(document.get("namespace", "")),
        task_queue=str(document.get("taskQueue", "")),
        heartbeat_timeout=_seconds(duration(document.get("heartbeatTimeout"))),
    )


def _seconds(value: datetime.timedelta | None) -> float:
    return 0.0 if value is None else value.total_seconds()


def model_options(spec: dict[str, Any]) -> ModelOptions:
    """The `modelOptions` of an AgentSpec document."""
    options: dict[str, Any] = spec.get("modelOptions") or {}
    max_tokens = options.get("maxTokens")
    return ModelOptions(
        temperature=_optional_float(options.get("temperature")),
        max_tokens=None if max_tokens is None else int(max_tokens),
        top_p=_optional_float(options.get("topP")),
        timeout=duration(options.get("timeout")),
    )


def instructions(spec: dict[str, Any]) -> str:
    """The system instructions of an AgentSpec document."""
    return str(spec.get("instructions") or "")


def model(spec: dict[str, Any]) -> str:
    """The model ("provider/name") of an AgentSpec document; empty when unset."""
    return str(spec.get("model") or "")


def config_model(config: dict[str, Any]) -> str:
    """The model an ExecutionConfig document sets instead of the agent's; empty when unset."""
    return str(config.get("modelName") or "")


def config_temperature(config: dict[str, Any]) -> float | None:
    """The temperature an ExecutionConfig document sets instead of the agent's."""
    return _optional_float(config.get("temperature"))


def mcp_servers(spec: dict[str, Any]) -> list[McpServerRecord]:
    """The `mcpServers` of an AgentSpec document."""
    found: list[McpServerRecord] = []
    for server in spec.get("mcpServers") or []:
        stdio, http = server.get("stdio"), server.get("http")
        name = str(server.get("name", ""))
        enabled = tuple(str(t) for t in server.get("enabledTools") or [])
        if stdio is not None:
            found.append(
                McpServerRecord(
                    name,
                    "stdio",
                    command=str(stdio.get("command", "")),
                    args=tuple(str(a) for a in stdio.get("args") or []),
                    env_names=tuple(str(e) for e in stdio.get("env") or []),
                    enabled_tools=enabled,
                )
            )
        elif http is not None:
            headers = http.get("headers") or {}
            found.append(
                McpServerRecord(
                    name,
                    "http",
                    url=str(http.get("url", "")),
                    headers=tuple((str(k), str(v)) for k, v in sorted(headers.items())),
                    enabled_tools=enabled,
                )
            )
    return found


# The tool "server" of an agent's sub-agents: a sub-agent is the tool "agents.<name>" (in
# ToolApproval.tools and in steps), so no MCP server may take this name.
SUB_AGENTS_SERVER = "agents"


def sub_agents(spec: dict[str, Any]) -> list[SubAgentRecord]:
    """The `subAgents` of an AgentSpec document."""
    return [
        SubAgentRecord(
            name=str(sub.get("name", "")),
            agent=str(sub.get("agent", "")),
            description=str(sub.get("description", "")),
        )
        for sub in spec.get("subAgents") or []
    ]


def max_steps(spec: dict[str, Any]) -> int:
    """The model-turn budget of an agent with tools (MCP servers or sub-agents); 0 for an agent
    without (one model call)."""
    if not spec.get("mcpServers") and not spec.get("subAgents"):
        return 0
    return int(spec.get("maxSteps") or DEFAULT_MAX_STEPS)
