"""CloudEvents as the DSL sees them, without expressions: building an emitted event, reading a
consumed one (`listen.read`), the types a listener routes, and comparing correlation values."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from backend.workflow_runner.dsl import errors, event_schema, expressions
from backend.workflow_runner.dsl.errors import DslException

SPEC_VERSION = "1.0"
# CloudEvents' types for extension attributes (Boolean, Integer, String; URI and Timestamp are
# written as strings in JSON).
_EXTENSION_TYPES = (str, bool, int)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def build_event(attributes: Any, event_id: str, now: datetime, path: str) -> dict[str, Any]:
    """The structured CloudEvent of an `emit` from its evaluated `with`: `specversion` 1.0,
    `id` and `time` filled in when the document left them out. Raises a `validation` error
    for attributes that evaluated to something CloudEvents cannot carry."""
    if not isinstance(attributes, dict):
        raise _invalid(f"emit.event.with evaluated to {type(attributes).__name__}", path)
    event: dict[str, Any] = {"specversion": SPEC_VERSION, **attributes}
    if event.get("id") is None:
        event["id"] = event_id
    if event.get("time") is None:
        event["time"] = rfc3339(now)
    for name in ("id", "source", "type", "time"):
        if not isinstance(event[name], str) or not event[name]:
            raise _invalid(f"{name} must be a non-empty string, not {event[name]!r}", path)
    if event["specversion"] != SPEC_VERSION:
        raise _invalid(f"specversion must be {SPEC_VERSION}", path)
    try:
        datetime.fromisoformat(event["time"])
    except ValueError:
        raise _invalid(f"time {event['time']!r} is not an RFC 3339 date-time", path) from None
    for name, value in event.items():
        standard = name in event_schema.STANDARD_ATTRIBUTES or name == "specversion"
        if standard or value is None:
            continue
        if not isinstance(value, _EXTENSION_TYPES):
            raise _invalid(
                f"extension attribute {name!r} must be a string, number or boolean", path
            )
    # An attribute that evaluated to null is absent (CloudEvents has no null attributes).
    return {name: value for name, value in event.items() if value is not None or name == "data"}


def read_event(event: dict[str, Any], mode: str) -> Any:
    """`listen.read`: `data` (the payload), `envelope` (the whole event) or `raw` (the payload's
    bytes, base64: `data_base64` as sent, text as UTF-8, any other JSON value as JSON text)."""
    if mode == "envelope":
        return dict(event)
    if mode == "raw":
        if "data_base64" in event:
            return event["data_base64"]
        data = event.get("data")
        if data is None:
            return ""
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        return base64.b64encode(text.encode()).decode()
    return event.get("data", event.get("data_base64"))


def strategy_filters(strategy: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The filters of a consumption strategy, or None for `any: []` (every event)."""
    if "one" in strategy:
        return [strategy["one"]]
    kind = "all" if "all" in strategy else "any"
    filters = list(strategy[kind])
    return filters if filters or kind == "all" else None


def routing_types(strategy: dict[str, Any]) -> list[str]:
    """The event types a listener registers (its `until` events included): the literal `type` of
    every filter, or [] (every type) when a filter has no literal type or is `any: []`."""
    strategies = [strategy]
    if isinstance(strategy.get("until"), dict):
        strategies.append(strategy["until"])
    types: set[str] = set()
    for part in strategies:
        filters = strategy_filters(part)
        if filters is None:
            return []
        for item in filters:
            kind = item["with"].get("type")
            if not isinstance(kind, str) or expressions.is_expression(kind):
                return []
            types.add(kind)
    return sorted(types)


def same_value(value: Any, expected: Any) -> bool:
    """Correlation: the extracted value equals the expectation; a constant `expect` is text, so a
    number or boolean also matches its JSON text (`"42"` expects 42)."""
    if value == expected:
        return True
    if isinstance(expected, str) and not isinstance(value, str):
        return json.dumps(value) == expected
    return False


def _invalid(detail: str, path: str) -> DslException:
    return DslException(errors.DslError(errors.VALIDATION, 400, "Invalid event", detail, path))
