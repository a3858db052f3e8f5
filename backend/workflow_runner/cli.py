"""Command line of the workflow runner: the worker, and commands to run and validate workflows."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="workflow-runner",
    help="Runs Serverless Workflow DSL documents durably on Temporal.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    # A callback keeps typer in multi-command mode while there is only one command.
    pass


@app.command()
def version() -> None:
    """Print the version of this build."""
    typer.echo("workflow-runner 0.1.0")
