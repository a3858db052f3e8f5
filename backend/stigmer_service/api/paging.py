"""Keyset page tokens: opaque to clients, base64 of the last (created_at, id) a page returned."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import json
import re

from backend.stigmer_service.errors import InvalidArgument
from backend.stigmer_service.store.records import PageCursor

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
_NOT_OURS = "is not a token from a previous response"
# Ids are ours (`ids.py`): short, printable, no quotes or NULs.
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclasses.dataclass(frozen=True)
class PageRequest:
    after: PageCursor | None  # None: the first page.
    limit: int


def encode(last: PageCursor) -> str:
    document = {"t": last.created_at.isoformat(), "i": last.id}
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode()


def decode(token: str) -> PageCursor:
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        created_at = datetime.datetime.fromisoformat(document["t"])
        last_id = document["i"]
        if not isinstance(last_id, str) or not _ID.fullmatch(last_id) or not created_at.tzinfo:
            raise ValueError("not a cursor")
        return PageCursor(created_at.astimezone(datetime.UTC), last_id)
    except (ValueError, TypeError, KeyError, OverflowError, binascii.Error, UnicodeError):
        raise InvalidArgument("page_token", _NOT_OURS) from None


def request(page_size: int, page_token: str) -> PageRequest:
    """The page a request asks for; a bad size or token is INVALID_ARGUMENT naming the field."""
    if page_size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    after = decode(page_token) if page_token else None
    return PageRequest(after, min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE))


def next_token(last: PageCursor | None, more: bool) -> str:
    return encode(last) if more and last is not None else ""
