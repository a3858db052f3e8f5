"""The parts of `try`/`catch`/`retry` and `raise` that need no expression: which errors a catch's
`errors.with` filter takes, how long a retry waits, and the error a `raise` task describes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.workflow_runner.calls import text
from backend.workflow_runner.dsl import budgets, durations, errors
from backend.workflow_runner.dsl.errors import DslError, DslException

# Evaluates a condition (`when`, `exceptWhen`) written at a JSON pointer of the document.
Condition = Callable[[Any, str], bool]


def catches(catch: dict[str, Any], error: dict[str, Any], condition: Condition, path: str) -> bool:
    """Whether a try task's `catch` takes `error`: its filter, then `when` and `exceptWhen`."""
    if not matches_filter(catch.get("errors", {}).get("with", {}), error):
        return False
    if "when" in catch and not condition(catch["when"], path + "/catch/when"):
        return False
    return not (
        "exceptWhen" in catch and condition(catch["exceptWhen"], path + "/catch/exceptWhen")
    )


def should_retry(
    retry: dict[str, Any], retries: int, limit: int, condition: Condition, path: str
) -> bool:
    """Whether a caught error is retried: fewer than `limit` retries so far (the policy's
    `limit.attempt.count`, retries after the first attempt, or the retries budget), then the
    policy's `when`/`exceptWhen`."""
    if retries >= limit:
        return False
    if "when" in retry and not condition(retry["when"], path):
        return False
    return not ("exceptWhen" in retry and condition(retry["exceptWhen"], path))


def matches_filter(wanted: dict[str, Any], error: dict[str, Any]) -> bool:
    """Whether `error` has every property of a catch's `errors.with` (statuses compared as text,
    standard error types in either spelling)."""
    for key, value in wanted.items():
        if key == "status":
            if str(error.get("status")) != str(value):
                return False
        elif key == "type":
            if errors.canonical_type(str(error.get("type"))) != errors.canonical_type(str(value)):
                return False
        elif error.get(key) != value:
            return False
    return True


def retry_delay(retry: dict[str, Any], attempt: int) -> float:
    """The policy's delay before retry `attempt`, never below the minimum that makes it a timer."""
    delay = durations.to_seconds(retry["delay"]) if "delay" in retry else 0.0
    backoff = retry.get("backoff", {"constant": {}})
    if "linear" in backoff:
        delay = delay * attempt
    elif "exponential" in backoff:
        factor = float(backoff["exponential"].get("factor", 2))
        delay = float(delay * factor ** (attempt - 1))
    return budgets.retry_delay(delay)


def unexpected_error(error: Exception, path: str) -> DslException:
    """A `runtime` error for an exception the interpreter did not expect (a bug, or a value that
    validation let through): the run fails naming the task instead of retrying forever."""
    detail = f"{type(error).__name__}: {error}"
    return DslException(DslError(errors.RUNTIME, 500, "Unexpected error", detail, path))


def raised_error(value: dict[str, Any], path: str) -> DslError:
    """The error of a `raise` task, from its evaluated definition."""
    try:
        status = int(value["status"])
    except (TypeError, ValueError):
        raise DslException(
            DslError(errors.VALIDATION, 400, "Invalid error status", repr(value["status"]), path)
        ) from None
    return DslError(
        type=str(value["type"]),
        status=status,
        title=text(value.get("title", "")),
        detail=text(value.get("detail", "")),
        instance=str(value.get("instance") or path),
    )
