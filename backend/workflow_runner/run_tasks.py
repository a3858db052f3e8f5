"""The `run: shell` and `run: script` activity: one process on the worker, off unless the
worker's operator turns the kind on (STIGMER_RUN_TASKS), bounded in time, output and reach.

Running a document's process is arbitrary code execution on the worker, hence the switch. When
on, the process still gets only what the document gives it: argv (never a shell string), its
`environment` plus the worker's PATH (not the worker's environment, which holds secrets), a
fresh empty working directory, stdout and stderr cut at a bound, and a timeout after which its
whole process group is killed (also when the activity is cancelled). docs/operations.md, "`run`
tasks", is the operator's side of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from backend.workflow_runner.dsl import errors
from backend.workflow_runner.dsl.errors import DslError
from backend.workflow_runner.heartbeats import heartbeating
from backend.workflow_runner.models import RunProcessInput, RunProcessOutput

RUN_PROCESS_ACTIVITY = "run_process"
ENABLED_ENV = "STIGMER_RUN_TASKS"
SCRIPTS_DIR_ENV = "STIGMER_RUN_SCRIPTS_DIR"
OUTPUT_MAX_BYTES_ENV = "STIGMER_RUN_OUTPUT_MAX_BYTES"
KINDS = ("shell", "script")
RETURN_MODES = ("stdout", "stderr", "code", "all", "none")
DEFAULT_OUTPUT_MAX_BYTES = 1024 * 1024
DEFAULT_TIMEOUT_SECONDS = 60.0
# The workflow gives the activity this much beyond the process's timeout, so that the activity
# ends with its own clear timeout error rather than Temporal's.
TIMEOUT_GRACE_SECONDS = 5.0
DEFAULT_HEARTBEAT_SECONDS = 5.0
# Without a heartbeat timeout Temporal throttles heartbeats to one per 30 s or more, and a
# cancellation (which rides on a heartbeat's answer) would reach the process that late.
MIN_HEARTBEAT_TIMEOUT_SECONDS = 15.0
MAX_SCRIPT_BYTES = 1024 * 1024
_TAIL_CHARS = 500
_CHUNK = 64 * 1024
_SCRIPT_FILES = {"python": "script.py", "js": "script.js"}

# Failure types (ApplicationError.type); the DSL error travels in the details.
DISABLED_ERROR = "RunTaskDisabled"
REFUSED_ERROR = "RunTaskRefused"
FAILED_ERROR = "ProcessFailed"
TIMED_OUT_ERROR = "ProcessTimedOut"

log = structlog.get_logger(__name__)


@dataclasses.dataclass(frozen=True)
class RunTaskSettings:
    """What the operator allows: the kinds (empty: none), where `file://` scripts may be read
    from (None: nowhere), and the bound on stdout and on stderr, each."""

    enabled: frozenset[str] = frozenset()
    scripts_dir: pathlib.Path | None = None
    output_max_bytes: int = DEFAULT_OUTPUT_MAX_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RunTaskSettings:
        """Raises ValueError naming the variable when one is malformed."""
        env = os.environ if environ is None else environ
        kinds = {k.strip() for k in env.get(ENABLED_ENV, "").split(",") if k.strip()}
        unknown = sorted(kinds - set(KINDS))
        if unknown:
            raise ValueError(
                f"{ENABLED_ENV}: unknown kind(s) {', '.join(unknown)} (allowed: {', '.join(KINDS)})"
            )
        directory = env.get(SCRIPTS_DIR_ENV, "").strip()
        limit = env.get(OUTPUT_MAX_BYTES_ENV, "").strip()
        try:
            output_max_bytes = int(limit) if limit else DEFAULT_OUTPUT_MAX_BYTES
        except ValueError:
            raise ValueError(f"{OUTPUT_MAX_BYTES_ENV}: not a number of bytes") from None
        if output_max_bytes < 1:
            raise ValueError(f"{OUTPUT_MAX_BYTES_ENV}: must be at least 1")
        return cls(
            frozenset(kinds),
            pathlib.Path(directory).resolve() if directory else None,
            output_max_bytes,
        )


def heartbeat_timeout(call: RunProcessInput) -> float:
    """The document's heartbeat timeout, else three heartbeats (at least 15 s)."""
    if call.heartbeat_timeout_seconds:
        return call.heartbeat_timeout_seconds
    interval = call.heartbeat_seconds or DEFAULT_HEARTBEAT_SECONDS
    return max(3 * interval, MIN_HEARTBEAT_TIMEOUT_SECONDS)


@dataclasses.dataclass
class _Finished:
    code: int
    stdout: str
    stderr: str


def _failure(
    error_type: str, dsl_type: str, status: int, title: str, detail: str, call: RunProcessInput
) -> ApplicationError:
    failure = DslError(dsl_type, status, title, detail, call.task_path)
    # What the document or the worker's configuration got wrong does not improve on a retry.
    retryable = error_type in (FAILED_ERROR, TIMED_OUT_ERROR)
    return ApplicationError(
        failure.describe(), failure.to_dict(), type=error_type, non_retryable=not retryable
    )


def _refused(detail: str, call: RunProcessInput) -> ApplicationError:
    return _failure(REFUSED_ERROR, errors.CONFIGURATION, 400, "Run task refused", detail, call)


class RunTasks:
    """The activity over the operator's settings (one instance per worker)."""

    def __init__(self, settings: RunTaskSettings) -> None:
        self.settings = settings

    @activity.defn(name=RUN_PROCESS_ACTIVITY)
    async def run_process(self, call: RunProcessInput) -> RunProcessOutput:
        if call.kind not in self.settings.enabled:
            raise _failure(
                DISABLED_ERROR,
                errors.CONFIGURATION,
                400,
                "Run task disabled",
                f"run: {call.kind} is off on this worker; its operator can allow it with "
                f"{ENABLED_ENV}={call.kind} (it runs the document's code on the worker)",
                call,
            )
        if call.return_mode not in RETURN_MODES:
            raise _refused(f"return: {call.return_mode!r} is not one of {RETURN_MODES}", call)
        with tempfile.TemporaryDirectory(prefix="stigmer-run-") as directory:
            argv = self._argv(call, pathlib.Path(directory))
            finished = await self._run(call, argv, directory)
        asked_for_code = call.return_mode in ("code", "all")
        if finished.code != 0 and not asked_for_code:
            raise _failure(
                FAILED_ERROR,
                errors.RUNTIME,
                500,
                "Process failed",
                f"{_name(call)} exited with code {finished.code}; stderr: "
                + _redacted(finished.stderr[-_TAIL_CHARS:], call.environment),
                call,
            )
        return RunProcessOutput(_shaped(finished, call.return_mode))

    def _argv(self, call: RunProcessInput, directory: pathlib.Path) -> list[str]:
        if call.kind == "shell":
            if not call.command:
                raise _refused("shell.command is empty", call)
            return [call.command, *call.arguments]
        interpreter = self._interpreter(call)
        script = directory / _SCRIPT_FILES[call.language]
        script.write_text(self._script(call), encoding="utf-8")
        # A file, as Zigflow runs it: argv[1] (python) and process.argv[2] (node) are the first
        # argument, as the documents written for Zigflow expect.
        return [interpreter, str(script), *call.arguments]

    def _interpreter(self, call: RunProcessInput) -> str:
        if call.language == "python":
            return sys.executable or shutil.which("python3") or "python3"
        if call.language == "js":
            node = shutil.which("node")
            if node is None:
                raise _refused("script.language js needs `node` on the worker's PATH", call)
            return node
        raise _refused(f"script.language {call.language!r} is not js or python", call)

    def _script(self, call: RunProcessInput) -> str:
        if call.code:
            return call.code
        if not call.source:
            raise _refused("script has neither code nor source", call)
        if not call.source.startswith("file://"):
            raise _refused(
                "script.source: only file:// sources are read (a script fetched over the "
                "network would run whatever that host serves)",
                call,
            )
        base = self.settings.scripts_dir
        if base is None:
            raise _refused(
                f"script.source {call.source}: file sources need {SCRIPTS_DIR_ENV} on the worker",
                call,
            )
        path = (base / call.source.removeprefix("file://")).resolve()
        if not path.is_relative_to(base):
            raise _refused(f"script.source {call.source} is outside {SCRIPTS_DIR_ENV}", call)
        try:
            with path.open("rb") as file:
                content = file.read(MAX_SCRIPT_BYTES + 1)
        except OSError as error:
            raise _refused(f"script.source {call.source}: {error.strerror}", call) from None
        if len(content) > MAX_SCRIPT_BYTES:
            raise _refused(f"script.source {call.source} is over {MAX_SCRIPT_BYTES} bytes", call)
        return content.decode("utf-8", errors="replace")

    async def _run(self, call: RunProcessInput, argv: list[str], directory: str) -> _Finished:
        environment = {"PATH": os.environ.get("PATH", os.defpath), **call.environment}
        started = time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE
                if call.stdin is not None
                else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=directory,
                env=environment,
                # Its own process group: a timeout or cancellation kills what it started too.
                start_new_session=True,
            )
        except OSError as error:
            raise _failure(
                FAILED_ERROR,
                errors.RUNTIME,
                500,
                "Process failed",
                f"{_name(call)} did not start: {error.strerror}",
                call,
            ) from None
        log.info("run task started", kind=call.kind, program=_name(call), pid=process.pid)
        limit = self.settings.output_max_bytes
        try:
            async with heartbeating(call.heartbeat_seconds or DEFAULT_HEARTBEAT_SECONDS):
                stdout, stderr, code, _ = await asyncio.wait_for(
                    asyncio.gather(
                        _read_bounded(process.stdout, limit),
                        _read_bounded(process.stderr, limit),
                        process.wait(),
                        _feed(process.stdin, call.stdin),
                    ),
                    call.timeout_seconds,
                )
        except TimeoutError:
            raise _failure(
                TIMED_OUT_ERROR,
                errors.TIMEOUT,
                408,
                "Process timed out",
                f"{_name(call)} ran past {call.timeout_seconds:g} s and was killed",
                call,
            ) from None
        finally:
            # Always: also what it left running in the background, after a timeout, on cancel.
            await _kill_group(process)
            log.info(
                "run task ended",
                kind=call.kind,
                program=_name(call),
                pid=process.pid,
                code=process.returncode,
                seconds=round(time.monotonic() - started, 3),
            )
        return _Finished(code, stdout, stderr)


async def _read_bounded(stream: asyncio.StreamReader | None, limit: int) -> str:
    """The stream's text up to `limit` bytes; the rest is read (so that the process never blocks
    on a full pipe) and counted, not kept."""
    kept = bytearray()
    dropped = 0
    while stream is not None and (chunk := await stream.read(_CHUNK)):
        room = max(limit - len(kept), 0)
        kept += chunk[:room]
        dropped += max(len(chunk) - room, 0)
    # As Zigflow returns it: without leading and trailing whitespace.
    text = kept.decode("utf-8", errors="replace").strip()
    if dropped:
        text += f"\n[output truncated: {dropped} more bytes]"
    return text


async def _feed(stream: asyncio.StreamWriter | None, text: str | None) -> None:
    if stream is None or text is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stream.write(text.encode("utf-8"))
        await stream.drain()
    stream.close()


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    # Reap it (shielded: this also runs while the activity is being cancelled).
    await asyncio.shield(process.wait())


def _shaped(finished: _Finished, mode: str) -> Any:
    if mode == "stderr":
        return finished.stderr
    if mode == "code":
        return finished.code
    if mode == "all":
        return {"code": finished.code, "stdout": finished.stdout, "stderr": finished.stderr}
    if mode == "none":
        return None
    return finished.stdout


def _name(call: RunProcessInput) -> str:
    """The program as errors and logs name it: never its arguments, which may carry data."""
    return f"`{call.command}`" if call.kind == "shell" else f"the {call.language} script"


def _redacted(text: str, environment: Mapping[str, str]) -> str:
    """`text` without the values the document passed in the environment (a credential a process
    echoes to stderr stays out of the error, which lands in history and logs)."""
    for value in sorted(environment.values(), key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text
