"""Command line of the Stigmer service: `serve` and client commands against a running service."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="stigmer-service",
    help="Stores agents and agent executions, and calls back the workflows that wait on them.",
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
    typer.echo("stigmer-service 0.1.0")
