"""The demo's state dir: one demo at a time per dir, no dev server left over from a crash, free ports."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import socket
import time

DEFAULT_STATE_DIR = pathlib.Path("~/.local/state/stigmer/demo")
DEMO_PID_FILE = "demo.pid"
TEMPORAL_PID_FILE = "temporal.pid"


class StateDirBusyError(Exception):
    """Another demo is running with the same state dir (they would share SQLite files)."""


class PortTakenError(Exception):
    """A fixed port that the dev mode needs is already in use."""


def _read_pid(path: pathlib.Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command_line(pid: int) -> str:
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def claim(state_dir: pathlib.Path) -> list[str]:
    """Takes the state dir for this process; returns notes about what it cleaned up."""
    state_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    demo_pid = _read_pid(state_dir / DEMO_PID_FILE)
    if demo_pid and demo_pid != os.getpid() and _alive(demo_pid):
        raise StateDirBusyError(
            f"another demo (pid {demo_pid}) is using {state_dir}: stop it or pass --state-dir "
            f"(if no demo runs, delete {state_dir / DEMO_PID_FILE})"
        )
    (state_dir / DEMO_PID_FILE).write_text(f"{os.getpid()}\n")
    # A demo killed with SIGKILL cannot stop its dev server; the next one does, so that two
    # servers never write the same SQLite file.
    server_pid = _read_pid(state_dir / TEMPORAL_PID_FILE)
    if server_pid and _alive(server_pid) and str(state_dir) in _command_line(server_pid):
        terminate(server_pid)
        notes.append(
            f"stopped a Temporal dev server left over by an earlier demo (pid {server_pid})"
        )
    (state_dir / TEMPORAL_PID_FILE).unlink(missing_ok=True)
    return notes


def release(state_dir: pathlib.Path) -> None:
    if _read_pid(state_dir / DEMO_PID_FILE) == os.getpid():
        (state_dir / DEMO_PID_FILE).unlink(missing_ok=True)


def record_server(state_dir: pathlib.Path, pid: int) -> None:
    (state_dir / TEMPORAL_PID_FILE).write_text(f"{pid}\n")


def forget_server(state_dir: pathlib.Path) -> None:
    (state_dir / TEMPORAL_PID_FILE).unlink(missing_ok=True)


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if the process is still there after `timeout`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def ensure_free(host: str, port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise PortTakenError(
                f"port {host}:{port} ({what}) is already in use; stop whatever holds it "
                "(another dev stack?) and try again"
            ) from None
