"""Validation of `emit`, `listen` and `schedule`: the loader's _Validator inherits these checks.

What the JSON Schemas of event_schema.py cannot say is checked here, with the path: a
consumption strategy has exactly one of `one`, `any`, `all`, and `until` only with `any` (as in
the specification's schema); emitted attribute names follow CloudEvents; a schedule has exactly
one of `every`, `cron`, `after`, `on`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from backend.workflow_runner.dsl import event_schema, expressions, model

STRATEGY_KINDS = ("one", "any", "all")
SCHEDULE_KINDS = ("every", "cron", "after", "on")
# CloudEvents: attribute names are lower-case ASCII letters and digits.
ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]+$")
# One cron field: numbers, names (JAN, MON), ranges, steps, lists, `*` and `?`.
_CRON_FIELD = re.compile(r"^[A-Za-z0-9*?,/\-]+$")


class EventChecks:
    """Mixed into the loader's validator, which provides the methods stubbed below."""

    document: Any
    problems: list[Any]

    def _add(self, path: str, message: str) -> None:
        raise NotImplementedError

    def _schema(self, value: Any, definition: dict[str, Any], path: str) -> None:
        raise NotImplementedError

    def _duration(self, value: Any, path: str) -> None:
        raise NotImplementedError

    def _condition(self, value: Any, path: str, variables: Iterable[str]) -> None:
        raise NotImplementedError

    def _transform(self, value: Any, path: str, variables: Iterable[str]) -> None:
        raise NotImplementedError

    def _value_expressions(self, value: Any, path: str, variables: Iterable[str]) -> None:
        raise NotImplementedError

    def _expression(self, program: str, path: str, variables: Iterable[str]) -> None:
        raise NotImplementedError

    def _task_list(self, tasks: list[Any], path: str, variables: Iterable[str]) -> None:
        raise NotImplementedError

    # Tasks (called by the validator after the task's schema passed).

    def _task_emit(
        self, task: dict[str, Any], path: str, variables: list[str], _: list[str]
    ) -> None:
        attributes = task["emit"]["event"]["with"]
        where = path + "/emit/event/with"
        for name, value in attributes.items():
            at = f"{where}/{model.escape_pointer(str(name))}"
            if name == "specversion":
                if value != "1.0":
                    self._add(at, "specversion must be '1.0' (CloudEvents 1.0), or left out")
            elif name not in event_schema.STANDARD_ATTRIBUTES and not ATTRIBUTE_NAME.match(name):
                self._add(
                    at, f"extension attribute {name!r}: CloudEvents names are lower-case a-z, 0-9"
                )
        for name in ("source", "type", "id"):
            if attributes.get(name) == "":
                self._add(f"{where}/{name}", f"{name} must not be empty")
        time = attributes.get("time")
        if isinstance(time, str) and not expressions.is_expression(time):
            try:
                datetime.fromisoformat(time)
            except ValueError:
                self._add(where + "/time", f"time {time!r} is not an RFC 3339 date-time")
        self._value_expressions(attributes, where, variables)

    def _task_listen(
        self, task: dict[str, Any], path: str, variables: list[str], _: list[str]
    ) -> None:
        self._strategy(task["listen"]["to"], path + "/listen/to", variables, nested=False)
        foreach = task.get("foreach")
        if foreach is None:
            return
        inner = [
            *variables,
            foreach.get("item", model.DEFAULT_EACH),
            foreach.get("at", model.DEFAULT_AT),
        ]
        if "do" in foreach:
            self._task_list(foreach["do"], path + "/foreach/do", inner)
        for field in ("output", "export"):
            if "as" in foreach.get(field, {}):
                self._transform(foreach[field]["as"], f"{path}/foreach/{field}/as", inner)

    # Parts.

    def _strategy(self, strategy: Any, path: str, variables: list[str], nested: bool) -> None:
        if not isinstance(strategy, dict):
            self._add(path, "a consumption strategy must be a mapping")
            return
        kinds = [kind for kind in STRATEGY_KINDS if kind in strategy]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            self._add(path, f"needs exactly one of one, any, all (found: {found})")
            return
        (kind,) = kinds
        if kind == "one":
            self._filter(strategy["one"], path + "/one", variables)
        else:
            for index, item in enumerate(strategy[kind]):
                self._filter(item, f"{path}/{kind}/{index}", variables)
        if "until" not in strategy:
            return
        until = strategy["until"]
        if nested:
            self._add(
                path + "/until", "the events of an `until` cannot have an `until` of their own"
            )
        elif kind != "any":
            self._add(path + "/until", f"`until` applies only to `any`, not to `{kind}`")
        elif isinstance(until, str):
            self._condition(until, path + "/until", variables)
        else:
            self._strategy(until, path + "/until", variables, nested=True)

    def _filter(self, item: dict[str, Any], path: str, variables: list[str]) -> None:
        with_event = [*variables, model.EVENT_VARIABLE]
        self._value_expressions(item["with"], path + "/with", with_event)
        for name, correlation in item.get("correlate", {}).items():
            at = f"{path}/correlate/{model.escape_pointer(str(name))}"
            self._expression(expressions.program_of(correlation["from"]), at + "/from", with_event)
            if expressions.is_expression(correlation.get("expect")):
                self._value_expressions(correlation["expect"], at + "/expect", variables)

    def _schedule(self, schedule: Any, variables: list[str]) -> None:
        before = len(self.problems)
        self._schema(schedule, event_schema.SCHEDULE, "/schedule")
        if len(self.problems) > before:
            return
        kinds = [kind for kind in SCHEDULE_KINDS if kind in schedule]
        if len(kinds) != 1:
            self._add(
                "/schedule",
                f"needs exactly one of every, cron, after, on (found: {', '.join(kinds)})",
            )
            return
        (kind,) = kinds
        if kind in ("every", "after"):
            self._duration(schedule[kind], f"/schedule/{kind}")
        elif kind == "cron":
            fields = schedule["cron"].split()
            if len(fields) != 5 or not all(_CRON_FIELD.match(field) for field in fields):
                self._add(
                    "/schedule/cron",
                    f"{schedule['cron']!r} is not a cron expression of 5 fields "
                    "(minute hour day-of-month month day-of-week)",
                )
        else:
            self._strategy(schedule["on"], "/schedule/on", variables, nested=False)
