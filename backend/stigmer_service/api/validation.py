"""Request checks shared by the servicers; each failure names the offending field."""

from __future__ import annotations

from backend.stigmer_service import ids
from backend.stigmer_service.errors import InvalidArgument
from backend.stigmer_service.providers import registry
from backend.stigmer_service.providers.base import ModelCallError

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


def required(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidArgument(field, "must not be empty")
    return value


def model(value: str, field: str) -> None:
    if not value:
        return
    try:
        registry.resolve(value)
    except ModelCallError as error:
        raise InvalidArgument(field, str(error)) from None


def slug(value: str, field: str) -> str:
    if not ids.SLUG_PATTERN.match(value):
        raise InvalidArgument(field, f"{value!r} is not a slug (lowercase letters, digits, dashes)")
    return value


def page(page_size: int, page_token: str) -> tuple[int, int]:
    """(offset, limit) of a page request."""
    if page_size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    try:
        offset = int(page_token) if page_token else 0
    except ValueError:
        raise InvalidArgument("page_token", "is not a token from a previous response") from None
    if offset < 0:
        raise InvalidArgument("page_token", "is not a token from a previous response")
    return offset, min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
