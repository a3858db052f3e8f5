"""cProfile summaries of the hot path: the top functions by own time, as rows and as text."""

from __future__ import annotations

import dataclasses
import io
import pathlib
import pstats
from typing import Any

TOP = 15


@dataclasses.dataclass
class ProfileRow:
    function: str
    calls: int
    own_seconds: float
    cumulative_seconds: float


def _name(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({function})" if line else function


def top_rows(stats: pstats.Stats, count: int = TOP) -> list[ProfileRow]:
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    ordered = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)
    return [
        ProfileRow(_name(key), int(nc), float(tt), float(ct))
        for key, (_cc, nc, tt, ct, _callers) in ordered[:count]
    ]


def write_text(stats: pstats.Stats, path: pathlib.Path) -> None:
    """The full listings (by own time and by cumulative time) for whoever wants more than the top."""
    buffer = io.StringIO()
    stats.stream = buffer  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(40)
    path.write_text(buffer.getvalue())
