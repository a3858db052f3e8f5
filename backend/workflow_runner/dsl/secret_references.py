"""`$secrets.NAME` references to names `use.secrets` does not declare: a configuration error.

An undeclared name would evaluate to null inside jq (`"Bearer " + null` is `"Bearer "`) and send
a request without its credential, so validation names it instead. A dynamic lookup
(`$secrets[$name]`) cannot be checked here; an undeclared name there still resolves nothing.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

from backend.workflow_runner.dsl import model

_REFERENCE = re.compile(
    r"""\$secrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\.\s*"([^"]*)"|\[\s*"([^"]*)"\s*\])"""
)


@dataclasses.dataclass(frozen=True)
class UndeclaredSecret:
    path: str
    name: str

    @property
    def message(self) -> str:
        return f"$secrets.{self.name} is not declared in use.secrets"


def undeclared(document: dict[str, Any]) -> list[UndeclaredSecret]:
    """Every string of the document that names an undeclared secret, in document order."""
    uses = document.get("use")
    declared = uses.get("secrets") if isinstance(uses, dict) else None
    names = set(declared) if isinstance(declared, list) else set()
    return [
        UndeclaredSecret(path, name)
        for path, text in _strings(document, "")
        for name in _referenced(text)
        if name not in names
    ]


def _referenced(text: str) -> list[str]:
    if "$secrets" not in text:
        return []
    return list(
        dict.fromkeys(
            next(g for g in m.groups() if g is not None) for m in _REFERENCE.finditer(text)
        )
    )


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}/{model.escape_pointer(str(key))}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}/{index}")
