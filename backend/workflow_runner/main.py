"""Entry point of the `workflow-runner` PEX."""

from __future__ import annotations

from backend.common import cli_main
from backend.workflow_runner.cli import app

if __name__ == "__main__":
    cli_main.run(lambda: app(prog_name="workflow-runner"))
