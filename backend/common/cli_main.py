"""How our command lines end: flush, then leave without interpreter finalization.

The Temporal client (a Rust core with its own Tokio threads) and gRPC (its polling threads) keep
native threads that may call into Python at any time. If one of them does so while the
interpreter finalizes, CPython aborts ("Fatal Python error: PyGILState_Release ... finalizing",
SIGABRT, exit 134) after the command has done its work and printed its result. A script then sees
a failure for a run that started. Finalization does nothing a command still needs once the
command has returned (its output is flushed here, tracing is flushed by the commands themselves),
so the process ends with `os._exit` and the exit code the command chose.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

# What a shell reports for a command stopped by Ctrl-C (128 + SIGINT).
INTERRUPTED_EXIT_CODE = 130


def exit_code_of(exit_: SystemExit) -> int:
    """The process exit code `sys.exit(value)` means: None is 0, a message is 1 (printed)."""
    code = exit_.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run(command: Callable[[], Any]) -> NoReturn:
    """Runs `command` (a typer app in standalone mode) and ends the process with its exit code."""
    try:
        command()
        code = 0
    except SystemExit as exit_:
        code = exit_code_of(exit_)
    except KeyboardInterrupt:
        code = INTERRUPTED_EXIT_CODE
    except BaseException:  # A bug: show it, as the interpreter would have.
        traceback.print_exc()
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe: nothing more can reach the reader.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
