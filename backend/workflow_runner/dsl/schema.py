"""JSON Schemas of the DSL subset we support: the document, and one per task type (shallow).

Task lists are checked only as lists of single-key maps here; the loader walks into each task and
checks it against its own type's schema, so that every problem is reported with its task path.
"""

from __future__ import annotations

from typing import Any

_IDENTIFIER = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}
_DURATION = {"type": ["string", "object"]}
_EXPRESSION_OR_VALUE: dict[str, Any] = {}
_CONDITION = {"type": ["string", "boolean"]}

TASK_LIST: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": {"type": "object"},
    },
}

ERROR_DEFINITION: dict[str, Any] = {
    "type": "object",
    "required": ["type", "status"],
    "properties": {
        "type": {"type": "string", "minLength": 1},
        "status": {"type": ["integer", "string"]},
        "title": {"type": "string"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": False,
}

RETRY_POLICY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "when": _CONDITION,
        "exceptWhen": _CONDITION,
        "delay": _DURATION,
        "backoff": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "constant": {"type": "object"},
                "linear": {"type": "object"},
                "exponential": {"type": "object"},
            },
            "additionalProperties": False,
        },
        "limit": {
            "type": "object",
            "properties": {
                "attempt": {
                    "type": "object",
                    "properties": {
                        "count": {"type": "integer", "minimum": 0},
                        "duration": _DURATION,
                    },
                    "additionalProperties": False,
                },
                "duration": _DURATION,
            },
            "additionalProperties": False,
        },
        "jitter": {
            "type": "object",
            "required": ["from", "to"],
            "properties": {"from": _DURATION, "to": _DURATION},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

_SCHEMA_DEFINITION: dict[str, Any] = {
    "type": "object",
    "required": ["document"],
    "properties": {
        "format": {"type": "string", "enum": ["json"]},
        "document": {"type": "object"},
    },
    "additionalProperties": False,
}

_TRANSFORM = {"type": ["string", "object"]}

COMMON_TASK_PROPERTIES: dict[str, Any] = {
    "if": _CONDITION,
    "input": {
        "type": "object",
        "properties": {"from": _TRANSFORM, "schema": _SCHEMA_DEFINITION},
        "additionalProperties": False,
    },
    "output": {
        "type": "object",
        "properties": {"as": _TRANSFORM, "schema": _SCHEMA_DEFINITION},
        "additionalProperties": False,
    },
    "export": {
        "type": "object",
        "properties": {"as": _TRANSFORM},
        "additionalProperties": False,
    },
    "then": {"type": "string", "minLength": 1},
    "timeout": {
        "type": "object",
        "required": ["after"],
        "properties": {"after": _DURATION},
        "additionalProperties": False,
    },
    "metadata": {"type": "object"},
}


def _task(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": required,
        "properties": {**COMMON_TASK_PROPERTIES, **properties},
        "additionalProperties": False,
    }


TASK_SCHEMAS: dict[str, dict[str, Any]] = {
    "set": _task(["set"], {"set": {"type": ["object", "string"]}}),
    "call": _task(["call"], {"call": {"type": "string"}, "with": {"type": "object"}}),
    "switch": _task(
        ["switch"],
        {
            "switch": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 1,
                    "additionalProperties": {
                        "type": "object",
                        "required": ["then"],
                        "properties": {"when": _CONDITION, "then": {"type": "string"}},
                        "additionalProperties": False,
                    },
                },
            }
        },
    ),
    "for": _task(
        ["for", "do"],
        {
            "for": {
                "type": "object",
                "required": ["in"],
                "properties": {"each": _IDENTIFIER, "in": {"type": "string"}, "at": _IDENTIFIER},
                "additionalProperties": False,
            },
            "while": _CONDITION,
            "do": TASK_LIST,
        },
    ),
    "fork": _task(
        ["fork"],
        {
            "fork": {
                "type": "object",
                "required": ["branches"],
                "properties": {"branches": TASK_LIST, "compete": {"type": "boolean"}},
                "additionalProperties": False,
            }
        },
    ),
    "try": _task(
        ["try", "catch"],
        {
            "try": TASK_LIST,
            "catch": {
                "type": "object",
                "properties": {
                    "errors": {
                        "type": "object",
                        "properties": {
                            "with": {
                                "type": "object",
                                "properties": {
                                    "type": {"type": "string"},
                                    "status": {"type": ["integer", "string"]},
                                    "instance": {"type": "string"},
                                    "title": {"type": "string"},
                                    "detail": {"type": "string"},
                                },
                                "additionalProperties": False,
                            }
                        },
                        "additionalProperties": False,
                    },
                    "as": _IDENTIFIER,
                    "when": _CONDITION,
                    "exceptWhen": _CONDITION,
                    "retry": {"type": ["object", "string"]},
                    "do": TASK_LIST,
                },
                "additionalProperties": False,
            },
        },
    ),
    "raise": _task(
        ["raise"],
        {
            "raise": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": ["object", "string"]}},
                "additionalProperties": False,
            }
        },
    ),
    "wait": _task(["wait"], {"wait": _DURATION}),
    "do": _task(["do"], {"do": TASK_LIST}),
}

HTTP_CALL_WITH: dict[str, Any] = {
    "type": "object",
    "required": ["method", "endpoint"],
    "properties": {
        "method": {"type": "string", "minLength": 1},
        "endpoint": {
            "type": ["string", "object"],
            "properties": {"uri": {"type": "string"}},
            "required": ["uri"],
            "additionalProperties": False,
        },
        "headers": {"type": ["object", "string"]},
        "body": _EXPRESSION_OR_VALUE,
        "query": {"type": ["object", "string"]},
        "output": {"type": "string", "enum": ["raw", "content", "response"]},
        "redirect": {"type": "boolean"},
    },
    "additionalProperties": False,
}

AGENT_CALL_WITH: dict[str, Any] = {
    "type": "object",
    "required": ["agent", "message"],
    "properties": {
        "agent": {"type": "string", "minLength": 1},
        "scope": {"type": "string"},
        "org": {"type": "string"},
        "message": {"type": "string"},
        "env": {"type": ["object", "string"], "additionalProperties": {"type": "string"}},
        "session": {"type": "string"},
        "config": {
            "type": "object",
            "properties": {
                "model": {"type": "string"},
                "timeout": _DURATION,
                "temperature": {"type": ["number", "string"]},
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

CALL_WITH_SCHEMAS: dict[str, dict[str, Any]] = {"http": HTTP_CALL_WITH, "agent": AGENT_CALL_WITH}

DOCUMENT: dict[str, Any] = {
    "type": "object",
    "required": ["document", "do"],
    "properties": {
        "document": {
            "type": "object",
            "required": ["dsl", "namespace", "name", "version"],
            "properties": {
                "dsl": {"type": "string", "pattern": r"^1\.0\.\d+"},
                "namespace": {"type": "string", "minLength": 1},
                "name": {"type": "string", "minLength": 1},
                "version": {"type": "string", "minLength": 1},
                "title": {"type": "string"},
                "summary": {"type": "string"},
                "tags": {"type": "object"},
                "metadata": {"type": "object"},
            },
            "additionalProperties": False,
        },
        "input": {
            "type": "object",
            "properties": {"schema": _SCHEMA_DEFINITION, "from": _TRANSFORM},
            "additionalProperties": False,
        },
        "use": {
            "type": "object",
            "properties": {
                "secrets": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "errors": {"type": "object", "additionalProperties": ERROR_DEFINITION},
                "retries": {"type": "object", "additionalProperties": RETRY_POLICY},
            },
            "additionalProperties": False,
        },
        "do": TASK_LIST,
        "timeout": COMMON_TASK_PROPERTIES["timeout"],
        "output": COMMON_TASK_PROPERTIES["output"],
        "metadata": {"type": "object"},
        # Checked in depth by event_checks.py (event_schema.SCHEDULE).
        "schedule": {"type": "object"},
    },
    "additionalProperties": False,
}
