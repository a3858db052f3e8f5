"""The command line: help everywhere, and apply/get/list against the in-process server."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re

import typer
from ai.stigmer.agentic.agentexecution.v1 import api_pb2, command_pb2, spec_pb2, status_pb2
from typer.testing import CliRunner

from backend.stigmer_service.cli import app
from backend.stigmer_service.client import ServiceClient
from tests.support import tickets
from tests.support.service import Stubs

MANIFEST = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: Research Helper
  org: acme
  labels: {team: docs}
spec:
  instructions: Help with research.
  model: offline/echo
  modelOptions:
    temperature: 0.3
    timeout: 30s
---
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata:
  name: second
  org: acme
spec:
  model: offline/other
"""


def test_help_everywhere() -> None:
    runner = CliRunner()
    # Every command the app has (typer bundles its own click: read the group's mapping), so a
    # new command is covered without touching this test.
    commands: list[str] = sorted(getattr(typer.main.get_command(app), "commands", {}))
    assert {"serve", "apply", "get", "list", "watch", "cancel", "approve", "reject"} <= set(
        commands
    )
    for command in ([], *([name] for name in commands)):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output
    assert "--temporal-namespace" in runner.invoke(app, ["serve", "--help"]).output


async def test_apply_get_list(stigmer: Stubs, tmp_path: pathlib.Path) -> None:
    manifest = tmp_path / "agents.yaml"
    manifest.write_text(MANIFEST)
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, [*args, "--endpoint", stigmer.endpoint])
        assert result.exit_code == 0, result.output
        return result.stdout

    # The CLI runs its own event loop, so it goes to a thread.
    applied = await asyncio.to_thread(invoke, "apply", "-f", str(manifest), "--output", "json")
    agents = json.loads(applied)
    assert [a["metadata"]["slug"] for a in agents] == ["research-helper", "second"]
    assert agents[0]["spec"]["modelOptions"]["timeout"] == "30s"
    again = await asyncio.to_thread(invoke, "apply", "-f", str(manifest))
    assert "acme/research-helper  offline/echo applied" in again
    shown = await asyncio.to_thread(invoke, "get", "agent", agents[0]["metadata"]["id"])
    assert "acme/research-helper" in shown
    listed = json.loads(
        await asyncio.to_thread(invoke, "list", "agents", "--org", "acme", "--output", "json")
    )
    assert {a["metadata"]["slug"] for a in listed} == {"research-helper", "second"}
    assert listed[0]["metadata"]["version"] == "2"  # Re-applied: updated, not duplicated.
    missing = await asyncio.to_thread(
        runner.invoke, app, ["get", "execution", "aex-missing", "--endpoint", stigmer.endpoint]
    )
    assert missing.exit_code == 1 and "NOT_FOUND" in missing.output


async def test_get_execution_lists_its_steps(stigmer: Stubs, tmp_path: pathlib.Path) -> None:
    agent = await stigmer.agent("desk", model="offline/echo", mcp_servers=[tickets.stdio_server()])
    message = "\n".join(
        [
            "Look at T-1, then escalate T-2.",
            '#tool=tickets.lookup_ticket:{"id": "T-1"}',
            '#tool=tickets.escalate_ticket:{"id": "T-2"}',
        ]
    )
    created = await stigmer.executions.CreateAgentExecution(
        command_pb2.CreateAgentExecutionRequest(
            execution=api_pb2.AgentExecution(
                spec=spec_pb2.AgentExecutionSpec(
                    agent_id=agent.metadata.id,
                    message=message,
                    runtime_env={
                        name: spec_pb2.ExecutionValue(value=value)
                        for name, value in tickets.runtime_env(tmp_path / "comments").items()
                    },
                )
            )
        )
    )
    async with ServiceClient(stigmer.endpoint) as client:
        states = [e async for e in client.watch_execution(created.metadata.id)]
    assert states[-1].status.phase == status_pb2.EXECUTION_PHASE_COMPLETED
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, [*args, "--endpoint", stigmer.endpoint])
        assert result.exit_code == 0, result.output
        return result.stdout

    text = await asyncio.to_thread(invoke, "get", "execution", created.metadata.id)
    steps = text.split("  steps (3):\n", 1)[1].splitlines()[:3]
    # Index, kind, tool and its arguments, the result or the error (cut short), the duration.
    assert re.fullmatch(
        r'\s+0 tool    tickets\.lookup_ticket \{"id": "T-1"\} '
        r'-> \{"id": "T-1", "priority": "high", "status": "open", "titl\.\.\. \(\d+\.\d\ds\)',
        steps[0],
    ), steps[0]
    assert re.fullmatch(
        r'\s+1 tool    tickets\.escalate_ticket \{"id": "T-2"\} '
        r"-> error: .*cannot escalate T-2\.\.\. \(\d+\.\d\ds\)",
        steps[1],
    ), steps[1]
    assert re.fullmatch(r"\s+2 message desk: .*\.\.\. \(\d+\.\d\ds\)", steps[2]), steps[2]
    # JSON has every step in full.
    shown = json.loads(
        await asyncio.to_thread(invoke, "get", "execution", created.metadata.id, "--output", "json")
    )
    full = shown["status"]["steps"]
    assert [(s.get("index", 0), s["kind"]) for s in full] == [
        (0, "STEP_KIND_TOOL_CALL"),
        (1, "STEP_KIND_TOOL_CALL"),
        (2, "STEP_KIND_ASSISTANT_MESSAGE"),
    ]
    assert json.loads(full[0]["result"])["title"] == "Checkout fails with a 502"
    assert "pager service is unavailable" in full[1]["error"]
    assert full[2]["result"] == states[-1].status.output
