"""The service's logging: the shared structlog setup (JSON lines when not on a terminal)."""

from __future__ import annotations

from backend.common.logs import configure, get

__all__ = ["configure", "get"]
