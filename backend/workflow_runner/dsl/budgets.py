"""Execution budgets of one run: their defaults, a document's overrides, and the error when one is
spent. The DSL engine runs in the workflow thread, so a loop or an expression without a bound
would hold that thread (and Temporal's deadlock detector) for as long as it runs.

A document overrides budgets under `document.metadata.stigmer.budgets` (the specification leaves
`document.metadata` free-form, so any DSL tool still accepts the document), e.g.
`document: {metadata: {stigmer: {budgets: {forItems: 50000}}}}`; each value is a positive integer
up to its ceiling.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from backend.workflow_runner.dsl import errors, expressions
from backend.workflow_runner.dsl.errors import DslError, DslException

# Where a document sets its budgets, as keys under `document`.
OVERRIDES_PATH = ("metadata", "stigmer", "budgets")

# A retry always waits at least this long, on a durable timer: a retry without delay would
# otherwise spin inside one workflow task without yielding.
MIN_RETRY_DELAY_SECONDS = 0.01
# Every this many tasks the run takes a durable timer of MIN_RETRY_DELAY_SECONDS, so that a long
# loop of cheap tasks spreads over several workflow tasks instead of tripping the deadlock
# detector (2 s per workflow task).
YIELD_EVERY_TASKS = 5000


@dataclasses.dataclass(frozen=True)
class Budget:
    """One budget as a document names it, its default and the most a document may ask for."""

    key: str
    default: int
    ceiling: int
    meaning: str


BUDGETS = (
    Budget(
        "expressionIterations",
        100_000,
        10_000_000,
        "iterations of one range/repeat/while/" "until/recurse call in an expression",
    ),
    Budget(
        "expressionOutputBytes",
        1_000_000,
        16_000_000,
        "serialised size of an expression's " "result",
    ),
    Budget("forItems", 10_000, 1_000_000, "items of one `for` collection"),
    Budget("thenJumps", 10_000, 1_000_000, "`then: <task>` jumps in one run"),
    Budget("retries", 100, 10_000, "retries of a `retry` policy without `limit.attempt.count`"),
)
_BY_KEY = {budget.key: budget for budget in BUDGETS}


@dataclasses.dataclass(frozen=True)
class Budgets:
    """The budgets of one run, by key (every key of BUDGETS is present)."""

    values: dict[str, int]

    @classmethod
    def of(cls, document: dict[str, Any]) -> Budgets:
        """The defaults, with the overrides of a validated document."""
        return cls({**{b.key: b.default for b in BUDGETS}, **_overrides(document)})

    def __getitem__(self, key: str) -> int:
        return self.values[key]

    @property
    def limits(self) -> expressions.Limits:
        return expressions.Limits(
            iterations=self["expressionIterations"], output_bytes=self["expressionOutputBytes"]
        )


def problems(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(JSON pointer, message) for every override that is not a known budget within its ceiling."""
    overrides = _at(document.get("document"), OVERRIDES_PATH)
    path = "/document/" + "/".join(OVERRIDES_PATH)
    if overrides is None:
        return []
    if not isinstance(overrides, dict):
        return [(path, "budgets must be a mapping of budget name to a positive integer")]
    found = []
    for key, value in overrides.items():
        budget = _BY_KEY.get(key)
        if budget is None:
            found.append((f"{path}/{key}", f"unknown budget; known: {', '.join(_BY_KEY)}"))
        elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
            found.append((f"{path}/{key}", "a budget must be a positive integer"))
        elif value > budget.ceiling:
            found.append(
                (f"{path}/{key}", f"{value} is above this budget's ceiling " f"{budget.ceiling}")
            )
    return found


class BudgetExceeded(DslException):
    """A spent budget: ends the run (a document's `catch` does not take it)."""


def exceeded(key: str, detail: str, path: str) -> BudgetExceeded:
    """The error that ends a run whose budget `key` is spent, at the task `path`."""
    return BudgetExceeded(DslError(errors.RUNTIME, 500, f"Budget {key} exceeded", detail, path))


def expression_failure(error: expressions.ExpressionError, path: str) -> DslException:
    """The DSL error of a failed expression: a spent budget, or an `expression` error."""
    if isinstance(error, expressions.ExpressionBudgetError):
        return exceeded(error.budget, str(error), path)
    return errors.expression_error(str(error), path)


class Meter:
    """What one run has spent; each method raises `exceeded` when a budget runs out."""

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets
        self.then_jumps = 0
        self.tasks = 0

    def jump(self, target: str, path: str) -> None:
        self.then_jumps += 1
        if self.then_jumps > self.budgets["thenJumps"]:
            raise exceeded(
                "thenJumps",
                f"then: {target} would be jump {self.then_jumps} of this run; the budget is "
                f"{self.budgets['thenJumps']}",
                path,
            )

    def for_collection(self, collection: Any, path: str) -> list[Any]:
        """`for.in`'s value as the list to iterate (null is empty, an object its values),
        within the forItems budget."""
        if collection is None:
            collection = []
        if isinstance(collection, dict):
            collection = list(collection.values())
        if not isinstance(collection, list):
            detail = f"for.in evaluated to {type(collection).__name__}"
            raise DslException(
                DslError(errors.VALIDATION, 400, "for.in is not a list", detail, path)
            )
        if len(collection) > self.budgets["forItems"]:
            raise exceeded(
                "forItems",
                f"for.in has {len(collection)} items; the budget is {self.budgets['forItems']}",
                path,
            )
        return collection

    def task_started(self) -> bool:
        """Counts a task; True when the run should now yield on a durable timer."""
        self.tasks += 1
        return self.tasks % YIELD_EVERY_TASKS == 0

    def retry_limit(self, retry: dict[str, Any]) -> int:
        """`retry.limit.attempt.count`, or the retries budget when the policy sets no limit."""
        limit = retry.get("limit", {}).get("attempt", {}).get("count")
        return self.budgets["retries"] if limit is None else int(limit)


def retry_delay(seconds: float) -> float:
    return max(seconds, MIN_RETRY_DELAY_SECONDS)


def _overrides(document: dict[str, Any]) -> dict[str, int]:
    overrides = _at(document.get("document"), OVERRIDES_PATH)
    return dict(overrides) if isinstance(overrides, dict) else {}


def _at(value: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
