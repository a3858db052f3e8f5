"""Everything a workflow's history holds, as text, to scan for values that must not be there."""

from __future__ import annotations

import base64
import urllib.parse

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory


def _payloads(message: Message) -> list[bytes]:
    if isinstance(message, Payload):
        return [message.data, *(v for v in message.metadata.values())]
    found: list[bytes] = []
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif isinstance(value, Message):
            items = [value]
        else:
            items = list(value)
        for item in items:
            if isinstance(item, Message):
                found.extend(_payloads(item))
    return found


def history_text(history: WorkflowHistory) -> str:
    """The history as JSON, plus every payload (which the JSON shows base64-encoded) decoded."""
    decoded = [
        data.decode("utf-8", errors="replace")
        for event in history.events
        for data in _payloads(event)
    ]
    return history.to_json() + "\n" + "\n".join(decoded)


def forms(secret: str) -> list[str]:
    """The secret as it is, percent-encoded in either way, and base64-encoded."""
    raw = secret.encode()
    return [
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),
        urllib.parse.quote_plus(secret),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
    ]
