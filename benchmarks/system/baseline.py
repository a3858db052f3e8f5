"""The code to compare with: a git revision checked out beside this one, for the service and the
runner processes of a run (`--baseline REV`), so that before and after are measured in one run,
on the same machine, at the same time."""

from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

# The git checkout to take the revision from: STIGMER_GIT_DIR (Pants runs tests in a sandbox
# that is no checkout: pants.toml passes the build root), else the one the command runs in.
GIT_DIR_ENV = "STIGMER_GIT_DIR"


def repository() -> pathlib.Path:
    explicit = os.environ.get(GIT_DIR_ENV)
    if explicit:
        return pathlib.Path(explicit)
    found = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        raise RuntimeError(f"--baseline needs a git checkout: run it in one, or set {GIT_DIR_ENV}")
    return pathlib.Path(found.stdout.strip())


@contextlib.contextmanager
def checkout(revision: str, parent: pathlib.Path) -> Iterator[pathlib.Path]:
    """A detached worktree of `revision` under `parent`, removed afterwards."""
    commit = _git("rev-parse", "--short", f"{revision}^{{commit}}").strip()
    tree = parent / f"baseline-{commit}"
    _git("worktree", "add", "--detach", "--force", str(tree), commit)
    try:
        yield tree
    finally:
        _git("worktree", "remove", "--force", str(tree))


def python_path(tree: pathlib.Path) -> str:
    """PYTHONPATH for a child process that runs `tree`'s code: its sources and its stubs first,
    then this process's third-party packages (the lockfile's, unchanged between revisions)."""
    here = str(repository())
    own = [p for p in sys.path if p and not p.startswith(here)]
    return ":".join([str(tree), str(tree / "apis" / "stubs" / "python"), *own])


def short(tree: pathlib.Path) -> str:
    return tree.name.removeprefix("baseline-")


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repository()), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout
