"""Secret placeholders (`{{secret:NAME}}`) left in messages by the runner, and their resolution."""

from __future__ import annotations

import re

# Same grammar as the runner's SECRET_PLACEHOLDER_PATTERN; duplicated so the service does not
# depend on the runner's package.
SECRET_PLACEHOLDER_PATTERN = re.compile(r"\{\{secret:([A-Za-z_][A-Za-z0-9_.-]*)\}\}")
MASK = "***"


def substitute(text: str, secrets: dict[str, str]) -> str:
    """Replaces each known placeholder with its value; unknown ones stay as they are."""

    def value(match: re.Match[str]) -> str:
        return secrets.get(match.group(1), match.group(0))

    return SECRET_PLACEHOLDER_PATTERN.sub(value, text)


def mask(text: str, secret_values: list[str]) -> str:
    """Replaces every occurrence of a secret value with `***` (longest first)."""
    for secret in sorted((s for s in secret_values if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
