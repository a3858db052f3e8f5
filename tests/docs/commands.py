"""The commands of a typer app, read from the app object (click introspection), not its files."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

import typer

from tests.docs import docs_text


class _Command(Protocol):
    """What the walk needs of a click command (typer bundles its own click, so the class is
    private); a group also has `commands`, a mapping of names to commands."""

    hidden: bool


def command_paths(app: typer.Typer) -> list[str]:
    """Every visible command, as typed after the program name ("list", "group sub")."""
    return sorted(" ".join(path) for path in _walk(typer.main.get_command(app), ()))


def _walk(command: _Command, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    subcommands: Mapping[str, _Command] | None = getattr(command, "commands", None)
    if subcommands is not None:
        for name, sub in subcommands.items():
            if not sub.hidden:
                yield from _walk(sub, (*path, name))
    elif path:
        yield path


def documented(program: str, path: str, texts: list[str]) -> bool:
    """Whether a code span shows the command: it starts with it (`cancel EXECUTION_ID`, as in
    a command table), or the program precedes it (`stigmer-service.pex serve`)."""
    words = path.split()
    for text in texts:
        for span in docs_text.code_spans(text):
            tokens = span.split()
            if tokens[: len(words)] == words:
                return True
            for i, token in enumerate(tokens):
                after = tokens[i + 1 : i + 1 + len(words)]
                if token.endswith((program, f"{program}.pex")) and after == words:
                    return True
    return False


def undocumented(program: str, app: typer.Typer, texts: list[str]) -> list[str]:
    return [path for path in command_paths(app) if not documented(program, path, texts)]
