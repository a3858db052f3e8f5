"""The parsed document is plain JSON (dicts and lists); these helpers name its parts."""

from __future__ import annotations

import dataclasses
from typing import Any

# Checked in this order: a `for` task also has `do`, so a bare `do` task comes last.
SUPPORTED_TASK_TYPES = (
    "call",
    "set",
    "switch",
    "for",
    "fork",
    "try",
    "raise",
    "wait",
    "emit",
    "listen",
    "do",
)
UNSUPPORTED_TASK_TYPES = ("run",)

FLOW_DIRECTIVES = ("continue", "exit", "end")

DEFAULT_EACH = "item"
DEFAULT_AT = "index"
DEFAULT_ERROR_VARIABLE = "error"
# `$event` in an event filter's expressions: the whole event (its envelope).
EVENT_VARIABLE = "event"


@dataclasses.dataclass(frozen=True)
class TaskItem:
    """One `- name: {...}` entry of a task list, with its JSON pointer in the document."""

    name: str
    definition: dict[str, Any]
    path: str


def escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def task_type(definition: dict[str, Any]) -> str | None:
    for kind in SUPPORTED_TASK_TYPES:
        if kind in definition:
            return kind
    return None


def task_items(tasks: list[Any], path: str) -> list[TaskItem]:
    """The task list at `path` (e.g. `/do`) as TaskItems; assumes the document was validated."""
    items = []
    for index, entry in enumerate(tasks):
        ((name, definition),) = entry.items()
        items.append(TaskItem(name, definition, f"{path}/{index}/{escape_pointer(name)}"))
    return items


def secret_names(document: dict[str, Any]) -> list[str]:
    return list(document.get("use", {}).get("secrets", []))
