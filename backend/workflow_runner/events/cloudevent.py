"""The one check of an event before it is published: a well-formed CloudEvent 1.0, or an error.

Every way in (the publish_event activity, `workflow-runner emit`, the HTTP ingress) goes through
`normalize` (or `from_http`, which reads an HTTP message with the SDK's binding first), so no
half-formed event reaches the stream. The SDK (`cloudevents.core`) validates the attributes; it
also fills a missing `id`, `specversion` and `time`, so the required ones are checked here
first: an event that came without an id must be refused, not given a random one.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cloudevents.core.bindings import http
from cloudevents.core.exceptions import BaseCloudEventException, CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

# An event bigger than this (its structured JSON) is refused: the stream holds events, not files.
MAX_EVENT_BYTES = 256 * 1024
REQUIRED = ("specversion", "id", "source", "type")
SPECVERSION = "1.0"
# RFC 3339 date-time (section 5.6): a full date, a time and an offset, `T` or space between.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_FORMAT = JSONFormat()


class InvalidEventError(ValueError):
    """Not a well-formed CloudEvent; `attribute` names what is wrong ("event" for the whole)."""

    def __init__(self, attribute: str, reason: str) -> None:
        super().__init__(f"{attribute}: {reason}")
        self.attribute = attribute
        self.reason = reason


class OversizedEventError(InvalidEventError):
    """Bigger than MAX_EVENT_BYTES."""


def normalize(raw: Any) -> dict[str, Any]:
    """The structured CloudEvent (a JSON object) as it will be published; raises
    InvalidEventError naming the first bad attribute."""
    if not isinstance(raw, Mapping):
        raise InvalidEventError("event", "must be a JSON object (a structured CloudEvent)")
    # The JSON format treats a null attribute as absent.
    attributes = {str(k): v for k, v in raw.items() if v is not None}
    _require(attributes)
    data = _take_data(attributes)
    if "time" in attributes:
        attributes["time"] = _parse_time(attributes["time"])
    for name, value in attributes.items():
        # Extension values are strings, booleans or integers in JSON (the spec's type system).
        if name not in ("time",) and (
            isinstance(value, float) or not isinstance(value, str | bool | int)
        ):
            raise InvalidEventError(name, "must be a string, a boolean or an integer")
    event = _build(attributes, data)
    return _bounded(event)


def from_json(body: bytes | str) -> dict[str, Any]:
    """A structured-mode body (`application/cloudevents+json`), normalized."""
    try:
        raw = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidEventError("event", f"not JSON: {error}") from None
    return normalize(raw)


def from_http(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """An HTTP request's event, binary mode (`ce-*` headers) or structured, normalized."""
    lowered = {name.lower(): value for name, value in headers.items()}
    if not any(name.startswith("ce-") for name in lowered):
        return from_json(body)
    for name in REQUIRED:
        if not lowered.get(f"ce-{name}"):
            raise InvalidEventError(name, f"is required (the ce-{name} header)")
    try:
        event = http.from_binary(http.HTTPMessage(lowered, body), _FORMAT, _build)
    except InvalidEventError:
        raise
    except ValueError as error:  # The SDK parses ce-time itself (dateutil's isoparse).
        raise InvalidEventError("time", f"not an RFC 3339 timestamp: {error}") from None
    return normalize(json.loads(_FORMAT.write(event)))


def to_json(event: Mapping[str, Any]) -> bytes:
    """The bytes published for a normalized event."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _require(attributes: dict[str, Any]) -> None:
    for name in REQUIRED:
        value = attributes.get(name)
        if value is None or value == "":
            raise InvalidEventError(name, "is required")
        if not isinstance(value, str):
            raise InvalidEventError(name, "must be a string")
    if attributes["specversion"] != SPECVERSION:
        raise InvalidEventError("specversion", f"must be {SPECVERSION!r}")


def _take_data(attributes: dict[str, Any]) -> Any:
    data = attributes.pop("data", None)
    encoded = attributes.pop("data_base64", None)
    if encoded is None:
        return data
    if data is not None:
        raise InvalidEventError("data_base64", "an event has data or data_base64, not both")
    if not isinstance(encoded, str):
        raise InvalidEventError("data_base64", "must be a base64 string")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidEventError("data_base64", "is not valid base64") from None


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidEventError("time", "must carry a UTC offset (RFC 3339)")
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise InvalidEventError("time", f"not an RFC 3339 timestamp: {value!r}")
    try:
        return datetime.fromisoformat(value.upper().replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEventError("time", f"not an RFC 3339 timestamp: {value!r}") from None


def _build(attributes: dict[str, Any], data: Any) -> CloudEvent:
    """The SDK's event (its EventFactory shape, also used by the HTTP binding)."""
    for name in REQUIRED:
        if not attributes.get(name):
            raise InvalidEventError(name, "is required")
    try:
        return CloudEvent(dict(attributes), data)
    except CloudEventValidationError as invalid:
        name, errors = next(iter(invalid.errors.items()))
        raise InvalidEventError(name, "; ".join(str(e) for e in errors)) from None
    except BaseCloudEventException as error:
        raise InvalidEventError(getattr(error, "attribute_name", "event"), str(error)) from None


def _bounded(event: CloudEvent) -> dict[str, Any]:
    encoded = _FORMAT.write(event)
    if len(encoded) > MAX_EVENT_BYTES:
        raise OversizedEventError(
            "event", f"is {len(encoded)} bytes; at most {MAX_EVENT_BYTES} are accepted"
        )
    structured: dict[str, Any] = json.loads(encoded)
    return structured
