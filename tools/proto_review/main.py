"""`./pants proto-review`: reviews the API change of a git range and fails on unallowed breaks."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Annotated

import typer

from tools.proto_review import buf, render
from tools.proto_review.review import AcknowledgementsError, review

app = typer.Typer(add_completion=False)


def _git(repo: pathlib.Path, *args: str) -> str | None:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def default_base(repo: pathlib.Path, head: str, main_branch: str) -> str | None:
    """The merge-base with `main`; on `main` itself (head is main's tip), the previous commit."""
    head_commit = _git(repo, "rev-parse", "HEAD" if head == buf.WORKTREE else head)
    main_commit = _git(repo, "rev-parse", "--verify", "--quiet", main_branch)
    if main_commit and head_commit and main_commit != head_commit:
        base = _git(repo, "merge-base", main_branch, head_commit)
        if base and base != head_commit:
            return base
    if head == buf.WORKTREE:
        return head_commit
    return _git(repo, "rev-parse", "--verify", "--quiet", f"{head_commit}~1")


@app.command()
def main(
    base: Annotated[
        str | None,
        typer.Option(
            help="Git ref to compare against (default: merge-base with main, or HEAD~1 on main)."
        ),
    ] = None,
    head: Annotated[
        str, typer.Option(help=f"Git ref under review, or {buf.WORKTREE} for the working tree.")
    ] = "HEAD",
    main_branch: Annotated[str, typer.Option(help="The branch changes merge into.")] = "main",
    markdown: Annotated[
        pathlib.Path | None, typer.Option(help="Also write the report as Markdown to this file.")
    ] = None,
    repo: Annotated[
        pathlib.Path | None, typer.Option(help="Repository root (default: the current one).")
    ] = None,
) -> None:
    """Prints what a git range changes in the API (apis/), with wire and source compatibility
    verdicts and the generated stubs affected; exits 1 on a breaking change that is neither in a
    new package version nor acknowledged in apis/breaking-changes.yaml."""
    root = repo or pathlib.Path(os.environ.get("BUILDROOT", os.getcwd()))
    resolved_base = base or default_base(root, head, main_branch)
    if resolved_base is None:
        typer.echo("proto-review: no earlier commit to compare with; nothing to review")
        return
    try:
        result = review(root, resolved_base, head)
    except (buf.BufError, AcknowledgementsError) as error:
        typer.echo(f"proto-review: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(render.text(result), nl=False)
    if markdown is not None:
        markdown.write_text(render.markdown(result))
    if not result.passed:
        raise typer.Exit(1)


if __name__ == "__main__":
    sys.exit(app())
