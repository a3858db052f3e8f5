"""Picks the provider of a `provider/name` model string."""

from __future__ import annotations

from backend.stigmer_service.providers.base import Provider, permanent
from backend.stigmer_service.providers.offline import OfflineProvider
from backend.stigmer_service.providers.openai import OpenAIProvider

DEFAULT_MODEL = "offline/echo"


def resolve(model: str) -> tuple[Provider, str]:
    """(provider, model name without the provider prefix)."""
    provider, _, name = (model or DEFAULT_MODEL).partition("/")
    if provider == "offline":
        return OfflineProvider(), name
    if provider == "openai" and name:
        return OpenAIProvider(), name
    raise permanent(f"unknown model {model!r}: use offline/<name> or openai/<name>")
