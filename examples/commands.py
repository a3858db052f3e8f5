"""The demo runs the programs' command lines as child processes, as a user would type them."""

from __future__ import annotations

import asyncio
import os
import sys


class CommandFailed(Exception):
    """A command line exited non-zero (its exit code and standard error in the message)."""


async def run(module: str, args: list[str], env: dict[str, str] | None = None) -> bytes:
    """Runs `python -m module args...` with this interpreter (which has the program, in the
    repo and in the demo's PEX) and the demo's environment plus `env`; returns its stdout."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise CommandFailed(
            f"exited with {process.returncode}: {err.decode(errors='replace').strip()}"
        )
    return out
