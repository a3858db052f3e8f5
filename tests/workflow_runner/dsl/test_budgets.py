"""Budgets and unexpected errors in the interpreter, with fake runners (no Temporal)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from backend.workflow_runner.dsl import budgets, errors, loader
from backend.workflow_runner.dsl.errors import DslException
from tests.workflow_runner.dsl.fakes import FakeRunners, run

HEADER = "document: {dsl: 1.0.0, namespace: test, name: t, version: '1', %s}\n"


def with_budgets(overrides: str) -> str:
    return HEADER % f"metadata: {{stigmer: {{budgets: {{{overrides}}}}}}}"


async def failure_of(
    text: str, workflow_input: Any = None, runners: FakeRunners | None = None
) -> Any:
    with pytest.raises(DslException) as failure:
        await run(text, workflow_input, runners)
    return failure.value.error


async def test_a_task_that_jumps_to_itself_fails_with_the_then_jumps_budget() -> None:
    started = time.monotonic()
    error = await failure_of("do:\n  - a: {set: {x: 1}, then: a}")
    assert time.monotonic() - started < 10
    assert error.type == errors.RUNTIME
    assert error.title == "Budget thenJumps exceeded"
    assert error.instance == "/do/0/a"
    assert error.detail == "then: a would be jump 10001 of this run; the budget is 10000"


async def test_a_document_may_lower_or_raise_a_budget() -> None:
    loop = """
do:
  - count: {set: {n: "${ (.n // 0) + 1 }"}}
  - again: {switch: [{more: {when: .n < 30, then: count}}, {done: {then: exit}}]}
"""
    error = await failure_of(with_budgets("thenJumps: 5") + loop)
    assert (error.title, error.instance) == ("Budget thenJumps exceeded", "/do/1/again")
    assert await run(with_budgets("thenJumps: 29") + loop) == {"n": 30}


async def test_a_for_over_more_items_than_its_budget_fails_before_the_first() -> None:
    text = (
        with_budgets("forItems: 3")
        + """
do:
  - each:
      for: {in: .items}
      do: [{inner: {set: {seen: "${ $item }"}}}]
"""
    )
    assert await run(text, {"items": [1, 2, 3]}) == {"seen": 3}
    error = await failure_of(text, {"items": [1, 2, 3, 4]})
    assert (error.type, error.title, error.instance) == (
        errors.RUNTIME,
        "Budget forItems exceeded",
        "/do/0/each",
    )
    assert error.detail == "for.in has 4 items; the budget is 3"


async def test_a_retry_without_limit_or_delay_stops_at_the_budget_and_always_waits() -> None:
    text = (
        with_budgets("retries: 4")
        + """
do:
  - guarded:
      try: [{fail: {raise: {error: {type: "https://example.com/e", status: 500}}}}]
      catch:
        retry: {}
        do: [{gaveUp: {set: {gaveUp: true}}}]
"""
    )
    runners = FakeRunners()
    assert await run(text, runners=runners) == {"gaveUp": True}
    assert runners.sleeps == [budgets.MIN_RETRY_DELAY_SECONDS] * 4


async def test_the_default_retry_limit_applies_to_a_named_policy_too() -> None:
    text = """
use: {retries: {forever: {delay: {milliseconds: 1}}}}
do:
  - guarded:
      try: [{fail: {raise: {error: {type: "https://example.com/e", status: 500}}}}]
      catch: {retry: forever}
"""
    runners = FakeRunners()
    assert await run(text, runners=runners) is None
    assert runners.sleeps == [budgets.MIN_RETRY_DELAY_SECONDS] * 100


@pytest.mark.parametrize(
    ("expression", "budget"),
    [
        ("${ [range(1e9)] | length }", "expressionIterations"),
        ('${ "x" * 2000000 }', "expressionOutputBytes"),
    ],
)
async def test_an_expression_past_its_budget_fails_the_run_naming_task_and_budget(
    expression: str, budget: str
) -> None:
    error = await failure_of(f"do:\n  - big: {{set: {{v: '{expression}'}}}}")
    assert (error.type, error.title, error.instance) == (
        errors.RUNTIME,
        f"Budget {budget} exceeded",
        "/do/0/big",
    )
    assert f"(budget {budget})" in error.detail


async def test_a_catch_all_does_not_take_a_spent_budget() -> None:
    error = await failure_of(
        with_budgets("forItems: 1")
        + """
do:
  - guarded:
      try: [{each: {for: {in: "[1, 2]"}, do: [{x: {set: {}}}]}}]
      catch: {retry: {limit: {attempt: {count: 3}}}, do: [{swallowed: {set: {}}}]}
"""
    )
    assert (error.title, error.instance) == ("Budget forItems exceeded", "/do/0/guarded/try/0/each")


async def test_a_long_loop_takes_a_durable_timer_every_5000_tasks() -> None:
    runners = FakeRunners()
    text = "do:\n  - each: {for: {in: .items}, do: [{add: {set: {n: '${ $item }'}}}]}"
    assert await run(text, {"items": list(range(10000))}, runners) == {"n": 9999}
    # 10001 tasks (the for and 10000 sets): a timer at the 5000th and at the 10000th.
    assert runners.sleeps == [budgets.MIN_RETRY_DELAY_SECONDS] * 2


def test_budget_overrides_are_validated() -> None:
    document = {
        "document": {
            "dsl": "1.0.0",
            "namespace": "t",
            "name": "t",
            "version": "1",
            "metadata": {
                "stigmer": {
                    "budgets": {"forItems": 0, "thenJumps": 10**9, "loops": 5, "retries": True}
                }
            },
        },
        "do": [{"a": {"set": {}}}],
    }
    where = "/document/metadata/stigmer/budgets"
    assert [(p.path, p.message) for p in loader.validate(document)] == [
        (f"{where}/forItems", "a budget must be a positive integer"),
        (f"{where}/thenJumps", "1000000000 is above this budget's ceiling 1000000"),
        (f"{where}/loops", "unknown budget; known: " + ", ".join(b.key for b in budgets.BUDGETS)),
        (f"{where}/retries", "a budget must be a positive integer"),
    ]


# Finding 9: values that validation lets through but the interpreter cannot use.
@pytest.mark.parametrize(
    ("task", "detail"),
    [
        (
            "{call: agent, with: {agent: a, message: m, config: {timeout: '${ \"soon\" }'}}}",
            "DurationError: 'soon' is not an ISO 8601 duration (e.g. PT1M30S)",
        ),
        (
            "{call: agent, with: {agent: a, message: m, config: {temperature: hot}}}",
            "ValueError: could not convert string to float: 'hot'",
        ),
        (
            "{call: http, with: {method: get, endpoint: '${ {url: \"http://x\"} }'}}",
            "KeyError: 'uri'",
        ),
        (
            "{call: http, with: {method: get, endpoint: 'http://x', headers: '${ [1] }'}}",
            "AttributeError: 'list' object has no attribute 'items'",
        ),
        (
            "{input: {schema: {document: {$ref: '#/nowhere'}}}, set: {}}",
            "_WrappedReferencingError: PointerToNowhere: '/nowhere' does not exist within {'$ref': '#/nowhere'}",
        ),
    ],
)
async def test_an_unexpected_error_fails_the_run_as_a_runtime_error_naming_the_task(
    task: str, detail: str
) -> None:
    runners = FakeRunners(agent=lambda call: {}, http=lambda call: {})
    error = await failure_of(f"do:\n  - first: {{set: {{}}}}\n  - bad: {task}", runners=runners)
    assert error.to_dict() == {
        "type": errors.RUNTIME,
        "status": 500,
        "title": "Unexpected error",
        "detail": detail,
        "instance": "/do/1/bad",
    }
    assert not runners.agent_calls
    assert not runners.http_calls


async def test_an_unexpected_error_outside_any_task_names_the_workflow() -> None:
    error = await failure_of(
        "input: {schema: {document: {$ref: '#/nowhere'}}}\ndo:\n  - a: {set: {}}", {}
    )
    assert (error.type, error.title, error.instance) == (errors.RUNTIME, "Unexpected error", "/")
