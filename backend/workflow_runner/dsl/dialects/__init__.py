"""Dialects of the DSL: standard Serverless Workflow 1.0, or Zigflow's (the original system's).

A document is read in one dialect, chosen per document: detected from its `document` block
(`taskQueue`, `workflowType` or `description` mean Zigflow; a standard block never has them), or
set explicitly (`--dialect`). A standard document keeps strict specification semantics; every
difference of the Zigflow dialect lives in `zigflow.py` (validation) and
`backend/workflow_runner/zigflow_runtime.py` (what runs), listed in docs/zigflow.md.
"""

from __future__ import annotations

import enum
from typing import Any


class Dialect(str, enum.Enum):
    STANDARD = "standard"
    ZIGFLOW = "zigflow"


AUTO = "auto"
CHOICES = (AUTO, Dialect.STANDARD.value, Dialect.ZIGFLOW.value)

# Keys of the `document` block that only Zigflow documents have.
ZIGFLOW_DOCUMENT_KEYS = ("taskQueue", "workflowType", "description")


class UnknownDialectError(ValueError):
    pass


def detect(document: Any) -> Dialect:
    """Zigflow when the document block (or a top-level `.anchors`) says so; standard otherwise."""
    if isinstance(document, dict):
        block = document.get("document")
        if isinstance(block, dict) and any(key in block for key in ZIGFLOW_DOCUMENT_KEYS):
            return Dialect.ZIGFLOW
        if ".anchors" in document:
            return Dialect.ZIGFLOW
    return Dialect.STANDARD


def resolve(document: Any, requested: str | Dialect | None) -> Dialect:
    """The dialect `requested` (`auto` or None: detected from the document)."""
    if requested is None or requested == AUTO:
        return detect(document)
    try:
        return Dialect(requested)
    except ValueError:
        raise UnknownDialectError(
            f"unknown dialect {requested!r}; expected one of {', '.join(CHOICES)}"
        ) from None
