"""JSON Schemas of the event parts of the DSL: `emit`, `listen`, event filters and `schedule`.

Shallow, like schema.py: the exactly-one-of rules of a consumption strategy (`one`, `any`,
`all`; `until` only with `any`) are checked by dsl/event_checks.py, which names the path.
"""

from __future__ import annotations

from typing import Any

from backend.workflow_runner.dsl.schema import COMMON_TASK_PROPERTIES, TASK_LIST

_IDENTIFIER = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}
_DURATION = {"type": ["string", "object"]}

# The CloudEvents context attributes the DSL names; any other key is an extension attribute.
STANDARD_ATTRIBUTES = (
    "id",
    "source",
    "type",
    "time",
    "subject",
    "datacontenttype",
    "dataschema",
    "data",
)

EVENT_PROPERTIES: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "source": {"type": "string"},
        "type": {"type": "string"},
        "time": {"type": "string"},
        "subject": {"type": "string"},
        "datacontenttype": {"type": "string"},
        "dataschema": {"type": "string"},
        "data": {},
    },
    "additionalProperties": True,
}

CORRELATION: dict[str, Any] = {
    "type": "object",
    "required": ["from"],
    "properties": {"from": {"type": "string"}, "expect": {"type": "string"}},
    "additionalProperties": False,
}

EVENT_FILTER: dict[str, Any] = {
    "type": "object",
    "required": ["with"],
    "properties": {
        "with": {**EVENT_PROPERTIES, "minProperties": 1},
        "correlate": {"type": "object", "additionalProperties": CORRELATION},
    },
    "additionalProperties": False,
}

CONSUMPTION_STRATEGY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "all": {"type": "array", "items": EVENT_FILTER},
        "any": {"type": "array", "items": EVENT_FILTER},
        "one": EVENT_FILTER,
        "until": {"type": ["string", "object"]},
    },
    "additionalProperties": False,
}

SUBSCRIPTION_ITERATOR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "item": _IDENTIFIER,
        "at": _IDENTIFIER,
        "do": TASK_LIST,
        "output": COMMON_TASK_PROPERTIES["output"],
        "export": COMMON_TASK_PROPERTIES["export"],
    },
    "additionalProperties": False,
}


def _task(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": {**COMMON_TASK_PROPERTIES, **properties},
        "additionalProperties": False,
    }


EMIT_TASK = _task(
    ["emit"],
    {
        "emit": {
            "type": "object",
            "required": ["event"],
            "properties": {
                "event": {
                    "type": "object",
                    "required": ["with"],
                    # The specification lets an event definition carry other keys; they are kept
                    # out of the event.
                    "properties": {"with": {**EVENT_PROPERTIES, "required": ["source", "type"]}},
                }
            },
            "additionalProperties": False,
        }
    },
)

LISTEN_TASK = _task(
    ["listen"],
    {
        "listen": {
            "type": "object",
            "required": ["to"],
            "properties": {
                "to": CONSUMPTION_STRATEGY,
                "read": {"type": "string", "enum": ["data", "envelope", "raw"]},
            },
            "additionalProperties": False,
        },
        "foreach": SUBSCRIPTION_ITERATOR,
    },
)

SCHEDULE: dict[str, Any] = {
    "type": "object",
    "minProperties": 1,
    "properties": {
        "every": _DURATION,
        "cron": {"type": "string", "minLength": 1},
        "after": _DURATION,
        "on": CONSUMPTION_STRATEGY,
    },
    "additionalProperties": False,
}

TASK_SCHEMAS: dict[str, dict[str, Any]] = {"emit": EMIT_TASK, "listen": LISTEN_TASK}
