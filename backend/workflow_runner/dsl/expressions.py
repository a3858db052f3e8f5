"""Runtime expressions: jq programs (`${ ... }`) run by the `jq` library with named arguments."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import jq

# The arguments every expression sees ($context, $input, ...); loops and catches add their own.
STANDARD_VARIABLES = ("context", "input", "output", "secrets", "task", "workflow", "runtime")

# jq can read the worker's environment and the wall clock; neither may reach a workflow, the one
# because it leaks the worker's secrets, the other because replay would see a different value.
_SANDBOX_PRELUDE = (
    'def env: {}; def now: error("now is not available in workflow expressions; '
    'use $workflow.startedAt or $task.startedAt"); {} as $ENV | '
)

_EXPRESSION = re.compile(r"^\s*\$\{(?P<body>.*)\}\s*$", re.DOTALL)


class ExpressionError(Exception):
    """An expression failed to compile or to evaluate."""


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and _EXPRESSION.match(value) is not None


def program_of(value: str) -> str:
    """The jq program of `${ program }`, or the string itself when it is a bare expression."""
    match = _EXPRESSION.match(value)
    return match.group("body").strip() if match else value.strip()


def check(program: str, variables: Iterable[str]) -> str | None:
    """Compiles `program` with the given argument names; returns the compile error, if any."""
    try:
        jq.compile(program, args=dict.fromkeys(variables))
    except ValueError as error:
        return _first_line(str(error))
    return None


def evaluate(program: str, data: Any, variables: Mapping[str, Any]) -> Any:
    """Runs `program` on `data`; its first result, or None when it yields nothing."""
    try:
        compiled = jq.compile(_SANDBOX_PRELUDE + "(" + program + ")", args=dict(variables))
        results = compiled.input_value(data).all()
    except ValueError as error:
        raise ExpressionError(f"{program!r}: {_first_line(str(error))}") from error
    return results[0] if results else None


def evaluate_value(value: Any, data: Any, variables: Mapping[str, Any]) -> Any:
    """Evaluates every `${ ... }` string inside `value` (recursively); other values are kept."""
    if isinstance(value, str):
        return evaluate(program_of(value), data, variables) if is_expression(value) else value
    if isinstance(value, dict):
        return {key: evaluate_value(item, data, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [evaluate_value(item, data, variables) for item in value]
    return value


def evaluate_transform(value: Any, data: Any, variables: Mapping[str, Any]) -> Any:
    """`input.from`, `output.as`, `export.as`: a string is one runtime expression, with or without
    `${ }` (the specification's schema types these fields as runtime expressions, and its own
    conformance scenarios write `output.as: .id`); an object is evaluated like `set`."""
    if isinstance(value, str):
        return evaluate(program_of(value), data, variables)
    return evaluate_value(value, data, variables)


def evaluate_condition(value: Any, data: Any, variables: Mapping[str, Any]) -> bool:
    """A condition (`if`, `when`, `while`): an expression with or without `${ }`, or a boolean."""
    if isinstance(value, bool):
        return value
    result = evaluate(program_of(str(value)), data, variables)
    return result is not None and result is not False


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message
