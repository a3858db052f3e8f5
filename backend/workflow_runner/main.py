"""Entry point of the `workflow-runner` PEX."""

from __future__ import annotations

from backend.workflow_runner.cli import app

if __name__ == "__main__":
    app(prog_name="workflow-runner")
