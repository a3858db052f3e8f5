"""DSL durations: ISO 8601 (`PT1M30S`) or an object (`{seconds: 5}`), as seconds."""

from __future__ import annotations

import re
from typing import Any

_ISO_8601 = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_UNIT_SECONDS = {
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "milliseconds": 0.001,
}


class DurationError(ValueError):
    """Not a duration the DSL allows."""


def to_seconds(value: Any) -> float:
    if isinstance(value, str):
        match = _ISO_8601.match(value.strip())
        if not match or value.strip() in ("P", "PT") or value.strip().endswith("T"):
            raise DurationError(f"{value!r} is not an ISO 8601 duration (e.g. PT1M30S)")
        parts = match.groupdict()
        return sum(float(parts[unit] or 0) * _UNIT_SECONDS[unit] for unit in parts)
    if isinstance(value, dict) and value and set(value) <= set(_UNIT_SECONDS):
        total = 0.0
        for unit, amount in value.items():
            if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
                raise DurationError(f"{unit} must be a non-negative number")
            total += float(amount) * _UNIT_SECONDS[unit]
        return total
    raise DurationError(f"{value!r} is not a duration")
