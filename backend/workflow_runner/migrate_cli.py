"""`workflow-runner migrate FILE`: a Zigflow-dialect document rewritten as standard DSL 1.0,
with every change and every construct that has no standard form named on stderr."""

from __future__ import annotations

import pathlib
from typing import Annotated, NoReturn

import typer
import yaml

from backend.workflow_runner.dsl import loader
from backend.workflow_runner.dsl.dialects import migrate as migration

EXIT_MIGRATED = 0
EXIT_INVALID = 1
EXIT_GAPS = 2


def register(app: typer.Typer) -> None:
    """Adds `migrate` to the runner's app."""

    @app.command()
    def migrate(
        file: Annotated[
            pathlib.Path, typer.Argument(help="A Zigflow-dialect document, YAML or JSON.")
        ],
        output: Annotated[
            pathlib.Path | None,
            typer.Option("--output", help="Write the standard document here (default: stdout)."),
        ] = None,
        workflow_type: Annotated[
            str | None,
            typer.Option(
                help="Which workflow of a file that defines several to migrate (default: the "
                "first; standard DSL has one workflow per document)."
            ),
        ] = None,
    ) -> None:
        """Rewrite a Zigflow-dialect document as standard DSL 1.0 (YAML on stdout or --output).

        Prints every change and every construct left unmigrated, with its JSON pointer, to stderr,
        then checks the output as a standard document.

        Exit 0: the output is valid standard DSL and nothing was left unmigrated.

        Exit 2: a document was written, but some constructs have no standard form (named).

        Exit 1: the input is unreadable or not a valid Zigflow document; nothing is written.
        """
        try:
            document = loader.parse(file.read_text(encoding="utf-8"))
        except OSError as error:
            typer.echo(f"{file}: cannot read: {error}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        except loader.InvalidDocumentError as invalid:
            _fail(file, [str(problem) for problem in invalid.problems])
        problems = loader.validate(document, "zigflow")
        if problems:
            _fail(file, [f"{problem} (as Zigflow dialect)" for problem in problems])
        assert isinstance(document, dict)
        try:
            result = migration.migrate(document, workflow_type)
        except KeyError as unknown:
            typer.echo(f"--workflow-type: {unknown.args[0]}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        text = yaml.safe_dump(result.document, sort_keys=False, allow_unicode=True)
        if output is None:
            typer.echo(text, nl=False)
        else:
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as error:
                typer.echo(f"--output: cannot write {output}: {error}", err=True)
                raise typer.Exit(EXIT_INVALID) from None
        for change in result.changes:
            typer.echo(f"changed {change}", err=True)
        for gap in result.unmigrated:
            typer.echo(f"not migrated {gap}", err=True)
        remaining = loader.validate(result.document, "standard")
        for problem in remaining:
            named = migration.covered(problem.path, result.unmigrated)
            suffix = "" if named else " (no gap names it: please report)"
            typer.echo(f"standard check {problem}{suffix}", err=True)
        typer.echo(
            f"{len(result.changes)} change(s), {len(result.unmigrated)} construct(s) without a "
            f"standard form, {len(remaining)} standard problem(s)",
            err=True,
        )
        raise typer.Exit(EXIT_GAPS if result.unmigrated or remaining else EXIT_MIGRATED)


def _fail(file: pathlib.Path, problems: list[str]) -> NoReturn:
    for problem in problems:
        typer.echo(f"{file}: {problem}", err=True)
    raise typer.Exit(EXIT_INVALID)
