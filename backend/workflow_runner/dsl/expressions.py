"""Runtime expressions: jq programs (`${ ... }`) run by the `jq` library, sandboxed and bounded.

Each program is compiled once per process (per program text, argument names and limits); its
arguments travel with its input as one JSON document, and only the arguments the program names
are serialised, so that a loop does not re-serialise the whole workflow on every evaluation.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jq

from backend.workflow_runner.dsl.dialects import zigflow

# The arguments every expression sees ($context, $input, ...); loops and catches add their own.
STANDARD_VARIABLES = ("context", "input", "output", "secrets", "task", "workflow", "runtime")

# Builtins that read the worker (environment, clock, time zone, files, stdin, stderr) or stop jq:
# a replay on another worker would see another value, or the worker would leak its own state.
# `env` and `$ENV` stay defined, as empty objects, for documents that probe them.
BLOCKED_BUILTINS = (
    "now/0",
    "localtime/0",
    "strflocaltime/1",
    "input/0",
    "inputs/0",
    "input_filename/0",
    "input_line_number/0",
    "debug/0",
    "debug/1",
    "stderr/0",
    "halt/0",
    "halt_error/0",
    "halt_error/1",
    "get_search_list/0",
    "get_prog_origin/0",
    "get_jq_origin/0",
)

# The budgets of Limits, named as a document names them (see budgets.py).
ITERATIONS = "expressionIterations"
OUTPUT_BYTES = "expressionOutputBytes"

_IDENTIFIER_REFERENCE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
# A call of one of the Zigflow dialect's built-in functions (uuid, timestamp, ...).
_ZIGFLOW_CALL = re.compile(r"(?<![$.\w])(?:" + "|".join(zigflow.FUNCTIONS) + r")(?!\w)")
_EXPRESSION = re.compile(r"^\s*\$\{(?P<body>.*)\}\s*$", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one evaluation may do: `iterations` bounds each `range`, `repeat`, `while`, `until`
    and `recurse` call; `output_bytes` the serialised size of the result."""

    iterations: int = 100_000
    output_bytes: int = 1_000_000


class ExpressionError(Exception):
    """An expression failed to compile or to evaluate."""


class ExpressionBudgetError(ExpressionError):
    """An expression went past one of its Limits; `budget` names it as a document does."""

    def __init__(self, budget: str, message: str) -> None:
        super().__init__(message)
        self.budget = budget


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and _EXPRESSION.match(value) is not None


def program_of(value: str) -> str:
    """The jq program of `${ program }`, or the string itself when it is a bare expression."""
    match = _EXPRESSION.match(value)
    return match.group("body").strip() if match else value.strip()


def check(program: str, variables: Iterable[str]) -> str | None:
    """Compiles `program` with the given argument names; returns the compile error, if any."""
    try:
        # The bare program first: its errors name columns of the program as the document has it.
        functions = (
            zigflow.function_prelude() + " " if zigflow.FUNCTIONS_VARIABLE in variables else ""
        )
        jq.compile(functions + program, args=dict.fromkeys(variables))
        _compiled(program, _referenced(program, variables), Limits())
    except ValueError as error:
        return _first_line(str(error))
    return None


def evaluate(
    program: str, data: Any, variables: Mapping[str, Any], limits: Limits | None = None
) -> Any:
    """Runs `program` on `data`; its first result, or None when it yields nothing."""
    limits = limits or Limits()
    names = _referenced(program, variables)
    try:
        compiled = _compiled(program, names, limits)
        document = json.dumps([data, {name: variables[name] for name in names}])
        text = next(iter(compiled.input_text(document)), None)
    except ValueError as error:
        message = _first_line(str(error))
        if message.startswith(_BUDGET_MARK):
            raise ExpressionBudgetError(ITERATIONS, message.removeprefix(_BUDGET_MARK)) from None
        raise ExpressionError(f"{program!r}: {message}") from error
    except StopIteration:  # Raised by jq.py when a program stops jq; blocked, kept as a guard.
        raise ExpressionError(f"{program!r}: stopped jq") from None
    if text is None:
        return None
    if len(text) > limits.output_bytes or len(text.encode()) > limits.output_bytes:
        raise ExpressionBudgetError(
            OUTPUT_BYTES,
            f"the result of {_abbreviated(program)} is larger than {limits.output_bytes} bytes "
            f"serialised (budget {OUTPUT_BYTES})",
        )
    return json.loads(text)


def evaluate_value(
    value: Any, data: Any, variables: Mapping[str, Any], limits: Limits | None = None
) -> Any:
    """Evaluates every `${ ... }` string inside `value` (recursively); other values are kept."""
    if isinstance(value, str):
        return (
            evaluate(program_of(value), data, variables, limits) if is_expression(value) else value
        )
    if isinstance(value, dict):
        return {key: evaluate_value(item, data, variables, limits) for key, item in value.items()}
    if isinstance(value, list):
        return [evaluate_value(item, data, variables, limits) for item in value]
    return value


def evaluate_transform(
    value: Any, data: Any, variables: Mapping[str, Any], limits: Limits | None = None
) -> Any:
    """`input.from`, `output.as`, `export.as`: a string is one runtime expression, with or without
    `${ }` (the specification's schema types these fields as runtime expressions, and its own
    conformance scenarios write `output.as: .id`); an object is evaluated like `set`."""
    if isinstance(value, str):
        return evaluate(program_of(value), data, variables, limits)
    return evaluate_value(value, data, variables, limits)


def evaluate_condition(
    value: Any, data: Any, variables: Mapping[str, Any], limits: Limits | None = None
) -> bool:
    """A condition (`if`, `when`, `while`): an expression with or without `${ }`, or a boolean."""
    if isinstance(value, bool):
        return value
    result = evaluate(program_of(str(value)), data, variables, limits)
    return result is not None and result is not False


# Errors raised by the bounded builtins start with this mark, so that they are told apart from
# the document's own `error(...)` calls (which stay expression errors).
_BUDGET_MARK = "stigmer budget: "


def _prelude(limits: Limits) -> str:
    """Definitions placed before every program: they shadow the builtins they name.

    `range` checks its count before it produces anything, so `[range(1e9)]` fails at once instead
    of filling memory. The `_stigmer_*` aliases keep the original builtins reachable
    from the bounded definitions (jq binds names lexically).
    """
    n = limits.iterations
    over = f'error("{_BUDGET_MARK}" + $what + " would run more than {n} iterations '
    over += f'(budget {ITERATIONS})")'
    blocked = []
    for builtin in BLOCKED_BUILTINS:
        name, arity = builtin.split("/")
        parameters = (
            "(" + "; ".join(f"_a{i}" for i in range(int(arity))) + ")" if int(arity) else ""
        )
        blocked.append(
            f'def {name}{parameters}: error("{name} is not available in workflow expressions'
            f'{_BLOCKED_HINTS.get(name, "")}");'
        )
    return " ".join(
        [
            "def env: {};",
            *blocked,
            f"def _stigmer_over($what): {over};",
            "def _stigmer_range($from; $upto; $by): range($from; $upto; $by);",
            "def range($from; $upto; $by): if $by != 0 and (($upto - $from) / $by) > "
            f'{n} then _stigmer_over("range") else _stigmer_range($from; $upto; $by) end;',
            "def range($from; $upto): range($from; $upto; 1);",
            "def range($upto): range(0; $upto; 1);",
            # Generators: their outputs are counted as they come (the originals keep their exact
            # semantics); `until` yields only at its end, so it counts its own steps.
            "def _stigmer_count($what; g): foreach g as $x (0; . + 1; "
            f"if . > {n} then _stigmer_over($what) else $x end);",
            "def _stigmer_repeat(f): repeat(f);",
            "def _stigmer_while(cond; update): while(cond; update);",
            "def _stigmer_recurse(f): recurse(f);",
            "def _stigmer_recurse(f; cond): recurse(f; cond);",
            'def repeat(f): _stigmer_count("repeat"; _stigmer_repeat(f));',
            'def while(cond; update): _stigmer_count("while"; _stigmer_while(cond; update));',
            'def recurse(f): _stigmer_count("recurse"; _stigmer_recurse(f));',
            'def recurse(f; cond): _stigmer_count("recurse"; _stigmer_recurse(f; cond));',
            "def recurse: recurse(.[]?);",
            "def until(cond; update): def _u($n): if cond then . elif $n >= "
            f'{n} then _stigmer_over("until") else (update | _u($n + 1)) end; _u(0);',
        ]
    )


_BLOCKED_HINTS = {
    "now": "; use $workflow.startedAt or $task.startedAt",
    "localtime": "; use gmtime (UTC) instead",
    "strflocaltime": "; use strftime (UTC) instead",
}


@functools.lru_cache(maxsize=4096)
def _compiled(program: str, names: tuple[str, ...], limits: Limits) -> Any:
    """`program` wrapped so that `.[0]` is its input and `.[1]` holds its named arguments; only
    its first result is computed, as JSON text (whose length the caller checks). The newline
    ends a `# comment` the program may end with."""
    binding = ".[1] as {" + ", ".join("$" + name for name in names) + "} | " if names else ""
    # The dialect's functions go after the binding: they read its argument.
    functions = zigflow.function_prelude() if zigflow.FUNCTIONS_VARIABLE in names else ""
    return jq.compile(
        f"{_prelude(limits)} {binding}{functions} {{}} as $ENV | .[0] | "
        f"limit(1; ({program}\n)) | tojson"
    )


def _referenced(program: str, variables: Iterable[str]) -> tuple[str, ...]:
    """The argument names `program` may use; a name it does not mention is not serialised. A
    `$name` inside a string literal counts too, which only costs its serialisation."""
    mentioned = set(_IDENTIFIER_REFERENCE.findall(program))
    if zigflow.FUNCTIONS_VARIABLE in variables and _ZIGFLOW_CALL.search(program):
        mentioned.add(zigflow.FUNCTIONS_VARIABLE)
    return tuple(sorted(name for name in variables if name in mentioned))


def _abbreviated(program: str) -> str:
    return repr(program if len(program) <= 80 else program[:77] + "...")


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else message
