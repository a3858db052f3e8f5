"""The values `migrate` reads and rewrites: expressions (which Zigflow-only variables and
functions they use; Zigflow's `$input` as `$workflow.input`), names, Go durations, `then` targets."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from backend.workflow_runner.dsl import expressions
from backend.workflow_runner.dsl.dialects import zigflow

FUNCTION_REASONS = {
    "uuid": "Zigflow built-in; standard DSL defines no functions beyond jq",
    "timestamp": "Zigflow built-in; standard DSL defines no functions beyond jq",
    "timestamp_iso8601": "Zigflow built-in; standard DSL defines no functions beyond jq",
    "now": "jq's clock; this runner blocks it in standard mode (use $workflow.startedAt or "
    "$task.startedAt)",
}
# Where a bare string (without `${ }`) is an expression.
BARE_EXPRESSION_SUFFIXES = (
    "/input/from",
    "/output/as",
    "/export/as",
    "/if",
    "/when",
    "/exceptWhen",
    "/while",
    "/for/in",
    "/acceptIf",
    "/until",
)
_FUNCTION_CALL = re.compile(r"(?<![$.\w])(" + "|".join(zigflow.FUNCTIONS) + r")(?![\w])")
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_VARIABLE = re.compile(r"\$(data|env|input)(?![\w])")
# A path on the expression's input: `.`, `.name`, `.[0]` where a term starts (not `$x.y`,
# `f(x).y`, `1.5` or `..`).
_INPUT_PATH = re.compile(r"(?:^|(?<=[\s(\[,|{:+\-*/<>=!;]))\.(?![\d.])")


@dataclasses.dataclass(frozen=True)
class Findings:
    """What one expression uses: (construct, reason) without a standard form, and whether it
    reads `$input`."""

    gaps: list[tuple[str, str]]
    reads_input: bool
    # Reads `.`: null in a Zigflow task's own fields, the task's input in standard DSL.
    reads_dot: bool = False


def is_expression_at(value: Any, path: str) -> bool:
    """Whether the string `value` at `path` is an expression (`${ }`, or bare where the DSL
    reads one)."""
    return isinstance(value, str) and (
        expressions.is_expression(value) or path.endswith(BARE_EXPRESSION_SUFFIXES)
    )


def scan(text: str) -> Findings:
    code = code_part(text)
    found = {m.group(1) for m in _VARIABLE.finditer(code)}
    gaps = []
    if "data" in found:
        gaps.append(("$data", _data_reason(code)))
    if "env" in found:
        gaps.append(("$env", "worker environment variables; standard DSL has none"))
    for name in sorted({m.group(1) for m in _FUNCTION_CALL.finditer(code)}):
        gaps.append((f"{name}()", FUNCTION_REASONS[name]))
    return Findings(gaps, "input" in found, _INPUT_PATH.search(code) is not None)


def workflow_input(text: str) -> str:
    """`text` with each `$input` (outside string literals) read as `$workflow.input`."""
    rewritten = list(text)
    for match in reversed(list(_VARIABLE.finditer(code_part(text)))):
        if match.group(1) == "input":
            rewritten[match.start() : match.end()] = "$workflow.input"
    return "".join(rewritten)


def code_part(program: str) -> str:
    """`program` with the text of its string literals blanked (same length), so that names in a
    message are not read as calls; the code of `\\( ... )` interpolations is kept."""
    out = list(program)
    in_string, depth_stack, index = False, [], 0
    while index < len(program):
        char = program[index]
        if in_string:
            if char == "\\" and program[index + 1 : index + 2] == "(":
                depth_stack.append(0)
                in_string = False
                index += 2
                continue
            if char == '"':
                in_string = False
            else:
                out[index] = " "
                if char == "\\" and index + 1 < len(program):
                    out[index + 1] = " "
                    index += 1
        elif char == '"':
            in_string = True
        elif depth_stack and char == "(":
            depth_stack[-1] += 1
        elif depth_stack and char == ")":
            if depth_stack[-1] == 0:
                depth_stack.pop()
                in_string = True
            else:
                depth_stack[-1] -= 1
        index += 1
    return "".join(out)


def _data_reason(code: str) -> str:
    if re.search(r"\$data\s*\.\s*workflow\b", code):
        return "Zigflow's accumulated state; nearest standard: $workflow (id, input, startedAt)"
    if re.search(r"\$data\s*\.\s*task\b", code):
        return "Zigflow's accumulated state; nearest standard: $task (name, startedAt)"
    return (
        "Zigflow's accumulated state (task results by name); standard DSL passes the previous "
        "task's output and what tasks export to $context: no general rewrite"
    )


def standard_name(value: Any) -> str:
    """`value` lower-cased and hyphenated to the standard's name pattern (`MoneyTransfer` ->
    `money-transfer`)."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", str(value))
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "workflow"


def go_duration_to_iso(text: str) -> str:
    """A Go duration (`10s`, `1m30s`) as ISO 8601 (`PT10S`, `PT1M30S`); ValueError otherwise."""
    parts = _GO_DURATION.findall(text.strip())
    if not parts or "".join(a + u for a, u in parts) != text.strip():
        raise ValueError(f"{text!r} is not a Go duration like 10s or 1m30s")
    total = sum(float(amount) * _GO_UNITS[unit] for amount, unit in parts)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    iso = "PT" + (f"{int(hours)}H" if hours else "") + (f"{int(minutes)}M" if minutes else "")
    if seconds or iso == "PT":
        iso += f"{round(seconds, 9):g}S"
    return iso


def then_targets(tasks: list[Any]) -> set[str]:
    found: set[str] = set()
    for entry in tasks:
        if isinstance(entry, dict) and len(entry) == 1:
            task = next(iter(entry.values()))
            if isinstance(task, dict):
                if isinstance(task.get("then"), str):
                    found.add(task["then"])
                for case in task.get("switch") or []:
                    for definition in case.values():
                        if isinstance(definition, dict) and isinstance(definition.get("then"), str):
                            found.add(definition["then"])
    return found


def unused_name(name: str, names: list[str]) -> str:
    candidate, suffix = name, 1
    while candidate in names:
        suffix += 1
        candidate = f"{name}-{suffix}"
    return candidate
