"""What the docs say: the markdown pages, their code spans, and the names mentioned in them."""

from __future__ import annotations

import dataclasses
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_METRIC = re.compile(r"(?<![A-Za-z0-9_.])(?:temporal|stigmer|workflow_runner)_[a-z0-9_]*[a-z0-9]")


@dataclasses.dataclass(frozen=True)
class Page:
    path: str
    text: str


def pages(repo: pathlib.Path = REPO) -> list[Page]:
    """README.md and docs/*.md: where settings and commands must be written down."""
    paths = [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
    return [Page(str(p.relative_to(repo)), p.read_text(encoding="utf-8")) for p in paths]


def code_spans(text: str) -> list[str]:
    """Inline `code` spans, and every line of fenced blocks."""
    spans = [line.strip() for block in _FENCE.findall(text) for line in block.splitlines()]
    without_fences = _FENCE.sub("", text)
    spans.extend(span.strip() for span in _INLINE.findall(without_fences))
    return spans


def mentions(text: str, name: str, *, prefix: bool = False) -> bool:
    """`name` as a whole word (or, for a prefix, followed by more of a name or `<NAME>`)."""
    tail = r"(?=[A-Z0-9<])" if prefix else r"(?![A-Za-z0-9_])"
    return re.search(r"(?<![A-Za-z0-9_])" + re.escape(name) + tail, text) is not None


def table_rows(text: str) -> list[str]:
    """The first cell of every markdown table row (`| STIGMER_X | default | meaning |`)."""
    return [
        line.split("|")[1] for line in text.splitlines() if line.startswith("|") and "|" in line[1:]
    ]


def metric_names(text: str) -> set[str]:
    """Names of metrics (`temporal_*`, `stigmer_*`, `workflow_runner_*`) in code spans."""
    return {name for span in code_spans(text) for name in _METRIC.findall(span)}
