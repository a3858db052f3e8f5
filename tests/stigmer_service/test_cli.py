"""The command line: help everywhere, and apply/get/list against the in-process server."""

from __future__ import annotations

import asyncio
import json
import pathlib

from typer.testing import CliRunner

from backend.stigmer_service.cli import app
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
    for command in (
        [],
        ["serve"],
        ["apply"],
        ["get"],
        ["list"],
        ["watch"],
        ["cancel"],
        ["migrate"],
    ):
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
