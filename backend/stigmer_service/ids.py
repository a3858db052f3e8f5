"""Resource ids and slugs."""

from __future__ import annotations

import re
import uuid


def new_agent_id() -> str:
    return f"agt-{uuid.uuid4().hex}"


def new_execution_id() -> str:
    return f"aex-{uuid.uuid4().hex}"


def new_session_id() -> str:
    return f"ses-{uuid.uuid4().hex}"


def slugify(name: str) -> str:
    """Lowercase, runs of other characters become one dash, no dash at either end."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


SLUG_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
