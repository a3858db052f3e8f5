"""The parts of `try`/`catch`/`retry` and `raise` that need no expression: which errors a catch's
`errors.with` filter takes, how long a retry waits, and the error a `raise` task describes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.workflow_runner.calls import text
from backend.workflow_runner.dsl import durations, errors
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


def should_retry(retry: dict[str, Any], retries: int, condition: Condition, path: str) -> bool:
    """Whether a caught error is retried: retries left, then the policy's `when`/`exceptWhen`."""
    if not retries_left(retry, retries):
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


def retries_left(retry: dict[str, Any], retries: int) -> bool:
    """Whether `retry.limit.attempt.count` (retries after the first attempt) allows another."""
    limit = retry.get("limit", {}).get("attempt", {}).get("count")
    return limit is None or retries < int(limit)


def retry_delay(retry: dict[str, Any], attempt: int) -> float:
    delay = durations.to_seconds(retry["delay"]) if "delay" in retry else 0.0
    backoff = retry.get("backoff", {"constant": {}})
    if "linear" in backoff:
        return delay * attempt
    if "exponential" in backoff:
        factor = float(backoff["exponential"].get("factor", 2))
        return float(delay * factor ** (attempt - 1))
    return delay


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
