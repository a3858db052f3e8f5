"""What enclosing tasks add to a task's expressions, and how its errors are handled."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Scope:
    """Expression arguments added by enclosing tasks (`$item`, `$index`, `$error`, ...)."""

    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Inside the `try` list of a try task: calls leave their errors to the document's catch.
    inside_try: bool = False

    def with_values(self, **values: Any) -> Scope:
        return dataclasses.replace(self, extras={**self.extras, **values})

    def trying(self) -> Scope:
        return dataclasses.replace(self, inside_try=True)
