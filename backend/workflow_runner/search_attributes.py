"""Zigflow's `metadata.searchAttributes` as Temporal's typed search attribute updates.

`{name: {type, value}}`, the types Zigflow names (metadata/search_attributes.go): int, double,
bool, keyword, text, datetime (RFC 3339), keywordlist; a null value unsets the attribute. The
names must be registered on the namespace first (`temporal operator search-attribute create`),
as in Zigflow: the server refuses others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributeUpdate


def _number(value: Any, kind: type) -> Any:
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        return kind(float(value)) if kind is int else kind(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ValueError(f"{value!r} is not a boolean")


def _time(value: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 time") from None


def _keywords(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"{value!r} is not a list")
    return [str(item) for item in value]


_TYPES: dict[str, tuple[Callable[[str], Any], Callable[[Any], Any]]] = {
    "int": (SearchAttributeKey.for_int, lambda v: _number(v, int)),
    "double": (SearchAttributeKey.for_float, lambda v: _number(v, float)),
    "bool": (SearchAttributeKey.for_bool, _boolean),
    "keyword": (SearchAttributeKey.for_keyword, str),
    "text": (SearchAttributeKey.for_text, str),
    "datetime": (SearchAttributeKey.for_datetime, _time),
    "keywordlist": (SearchAttributeKey.for_keyword_list, _keywords),
}


def updates(attributes: dict[str, Any]) -> Sequence[SearchAttributeUpdate[Any]]:
    """The typed updates of `attributes`; ValueError naming the attribute when one is invalid."""
    result: list[SearchAttributeUpdate[Any]] = []
    for name, spec in attributes.items():
        if not isinstance(spec, dict) or spec.get("type") not in _TYPES:
            raise ValueError(f"{name}: type must be one of {', '.join(_TYPES)}")
        make_key, convert = _TYPES[spec["type"]]
        key = make_key(name)
        value = spec.get("value")
        try:
            result.append(key.value_unset() if value is None else key.value_set(convert(value)))
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
    return result
