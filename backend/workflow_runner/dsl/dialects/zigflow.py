"""The Zigflow dialect at load time: its structure, its names, and which workflow a file holds.

A Zigflow document is checked against Zigflow's own JSON Schema (`zigflow_schema.json`, vendored
unchanged), so it is accepted or refused as Zigflow accepts or refuses it, error codes included;
the loader then checks its expressions and references with the extra variables below. What the
constructs mean when they run is in `backend/workflow_runner/zigflow_runtime.py`; the table of
both is docs/zigflow.md.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
from typing import Any

import jsonschema

from backend.workflow_runner.dsl import durations

# `$data` (the accumulated state) and `$env` (the variables an operator lets documents read).
VARIABLES = ("data", "env")
# The built-in functions (uuid, timestamp, ...) read their values from this argument.
FUNCTIONS_VARIABLE = "__zigflow"
FUNCTIONS = ("uuid", "timestamp_iso8601", "timestamp", "now")

# Zigflow's validation error codes, by the path they are about (pkg/utils/validation_codes.go).
ERROR_CODES = {
    "/document/taskQueue": "ERR_INVALID_TASK_QUEUE",
    "/document/workflowType": "ERR_INVALID_WORKFLOW_TYPE",
    "/document/dsl": "ERR_INVALID_DSL_VERSION",
    "/document/version": "ERR_INVALID_VERSION",
}

# The listen event types that are Temporal messages, not CloudEvents.
MESSAGE_TYPES = ("signal", "query", "update")


def function_prelude() -> str:
    """jq definitions of the built-in functions; each reads a value the workflow drew for this
    evaluation (workflow.uuid4() and workflow.now()), so a replay sees the same ones."""
    source = "$" + FUNCTIONS_VARIABLE
    return " ".join(f"def {name}: {source}.{name};" for name in FUNCTIONS)


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    text = importlib.resources.files(__package__).joinpath("zigflow_schema.json").read_text("utf-8")
    return jsonschema.Draft202012Validator(json.loads(text))


def normalized(document: dict[str, Any]) -> dict[str, Any]:
    """The document as Zigflow reads it: anchors dropped (YAML already expanded their uses), and
    the older fork's block (stigmer's: `namespace`, `name`, `description`) in today's names,
    where `namespace` was the task queue and `name` the workflow type."""
    result = {key: value for key, value in document.items() if key != ".anchors"}
    block = result.get("document")
    if isinstance(block, dict) and "taskQueue" not in block and "workflowType" not in block:
        block = dict(block)
        if "namespace" in block:
            block["taskQueue"] = block.pop("namespace")
        if "name" in block:
            block["workflowType"] = block.pop("name")
        if "description" in block:
            metadata = dict(block.get("metadata") or {})
            metadata.setdefault("description", block.pop("description"))
            block["metadata"] = metadata
        result["document"] = block
    return result


def structural_problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, message) of every place where `document` breaks Zigflow's schema."""
    found = []
    for error in _validator().iter_errors(document):
        path = "".join(f"/{_escape(str(part))}" for part in error.absolute_path)
        code = ERROR_CODES.get(path)
        message = _short(error)
        found.append((path, f"{message} ({code})" if code else message))
    return sorted(found)


def workflow_types(document: dict[str, Any]) -> list[str]:
    """The workflow types a file defines: one per top-level task when every one is a `do`
    (Zigflow registers each under its task name), else the document's `workflowType`."""
    tasks = document.get("do") or []
    names = [next(iter(entry)) for entry in tasks if isinstance(entry, dict) and len(entry) == 1]
    definitions = [entry[name] for entry, name in zip(tasks, names, strict=False)]
    if names and all(
        isinstance(d, dict) and set(d) >= {"do"} and _is_plain_do(d) for d in definitions
    ):
        return names
    return [str(document.get("document", {}).get("workflowType", ""))]


def select(document: dict[str, Any], workflow_type: str | None) -> dict[str, Any]:
    """The document that runs for `workflow_type`: a multi-workflow file's chosen workflow with
    the file's block, input and anchors; the whole document otherwise. Raises KeyError with the
    known types when `workflow_type` is not one of them."""
    types = workflow_types(document)
    if len(types) == 1 and types == [document.get("document", {}).get("workflowType")]:
        if workflow_type not in (None, types[0]):
            raise KeyError(
                f"unknown workflow type {workflow_type!r}; this file defines {types[0]!r}"
            )
        return document
    chosen = workflow_type or types[0]
    if chosen not in types:
        raise KeyError(f"unknown workflow type {chosen!r}; this file defines {', '.join(types)}")
    selected = copy.deepcopy(document)
    entry = next(e for e in document["do"] if chosen in e)
    selected["do"] = copy.deepcopy(entry[chosen]["do"])
    selected["document"] = {**selected["document"], "workflowType": chosen}
    return selected


def is_wait_extension(wait: Any) -> bool:
    """Zigflow's `wait` extension: `until` (a time) or a duration whose parts are expressions."""
    return isinstance(wait, dict) and (
        "until" in wait or any(isinstance(value, str) for value in wait.values())
    )


_DURATIONS = (
    ("startToCloseTimeout", "start_to_close_seconds"),
    ("scheduleToCloseTimeout", "schedule_to_close_seconds"),
    ("scheduleToStartTimeout", "schedule_to_start_seconds"),
    ("heartbeatTimeout", "heartbeat_seconds"),
)
_RETRY_DURATIONS = (
    ("initialInterval", "initial_interval_seconds"),
    ("maximumInterval", "maximum_interval_seconds"),
)


def activity_options(document: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """`metadata.activityOptions` of the document, overridden key by key by the task's, as the
    options the runner applies to the task's activity (Zigflow's metadata/activity_options.go):
    timeouts in seconds, the retry policy, priority and fairness, the summary."""
    merged: dict[str, Any] = {}
    for source in (document.get("document", {}).get("metadata"), task.get("metadata")):
        options = (source or {}).get("activityOptions") if isinstance(source, dict) else None
        if isinstance(options, dict):
            for key, value in options.items():
                if isinstance(value, dict) and isinstance(merged.get(key), dict):
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
    result: dict[str, Any] = {}
    for key, name in _DURATIONS:
        if key in merged:
            result[name] = durations.to_seconds(merged[key])
    retry = merged.get("retryPolicy") or {}
    for key, name in _RETRY_DURATIONS:
        if key in retry:
            result[name] = durations.to_seconds(retry[key])
    for source, key, name, kind in (
        (retry, "maximumAttempts", "maximum_attempts", int),
        (retry, "backoffCoefficient", "backoff_coefficient", float),
        (retry, "nonRetryableErrorTypes", "non_retryable_error_types", list),
        (merged.get("priority") or {}, "priorityKey", "priority_key", int),
        (merged.get("priority") or {}, "fairnessKey", "fairness_key", str),
        (merged.get("priority") or {}, "fairnessWeight", "fairness_weight", float),
        (merged, "summary", "summary", str),
    ):
        value = source.get(key)
        if value is not None and not isinstance(value, bool):
            result[name] = kind(value)
    return result


def max_history_length(document: dict[str, Any]) -> int:
    """`document.metadata.canMaxHistoryLength`: continue as new past this history length."""
    value = (document.get("document", {}).get("metadata") or {}).get("canMaxHistoryLength")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def update_names(document: Any) -> frozenset[str]:
    """The ids of every listen on a Temporal update anywhere in the file (read before it runs)."""
    names: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") == "update" and isinstance(value.get("id"), str):
                names.add(value["id"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(document.get("do") if isinstance(document, dict) else None)
    return frozenset(names)


def workflow_bodies(document: dict[str, Any]) -> dict[str, list[Any]]:
    """The task list of each workflow of a multi-workflow file, by name (empty otherwise)."""
    types = workflow_types(document)
    if types == [document.get("document", {}).get("workflowType")]:
        return {}
    return {name: entry[name]["do"] for entry in document["do"] for name in entry if name in types}


def _is_plain_do(definition: dict[str, Any]) -> bool:
    # A `for` task has `do` too; only a bare `do` task is a workflow of its own.
    return not ({"for", "fork", "try", "call", "run", "listen", "set", "switch"} & set(definition))


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _short(error: jsonschema.ValidationError) -> str:
    """The schema's message without the whole offending value, which can be a long task."""
    if error.validator in ("oneOf", "anyOf", "unevaluatedProperties", "additionalProperties"):
        best = jsonschema.exceptions.best_match(error.context or []) if error.context else None
        if best is not None and best is not error:
            return _short(best)
    message = error.message
    return message if len(message) <= 200 else message[:197] + "..."
