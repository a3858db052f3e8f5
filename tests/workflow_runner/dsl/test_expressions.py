"""The jq sandbox: blocked builtins, bounded generators and output, one compilation per program."""

from __future__ import annotations

import pytest

from backend.workflow_runner.dsl import expressions
from backend.workflow_runner.dsl.expressions import ExpressionBudgetError, ExpressionError, Limits

SMALL = Limits(iterations=1000, output_bytes=200)

# One call of every blocked builtin, each with the arity the sandbox blocks.
BLOCKED_CALLS = {
    "now/0": "now",
    "localtime/0": "0 | localtime",
    "strflocaltime/1": '0 | strflocaltime("%H")',
    "input/0": "input",
    "inputs/0": "[inputs]",
    "input_filename/0": "input_filename",
    "input_line_number/0": "input_line_number",
    "debug/0": "debug",
    "debug/1": 'debug("x")',
    "stderr/0": "stderr",
    "halt/0": "halt",
    "halt_error/0": "halt_error",
    "halt_error/1": "halt_error(1)",
    "get_search_list/0": "get_search_list",
    "get_prog_origin/0": "get_prog_origin",
    "get_jq_origin/0": "get_jq_origin",
}


def test_every_blocked_builtin_has_a_test() -> None:
    assert set(BLOCKED_CALLS) == set(expressions.BLOCKED_BUILTINS)


@pytest.mark.parametrize("program", sorted(BLOCKED_CALLS.values()))
def test_builtins_that_read_the_worker_fail(program: str) -> None:
    with pytest.raises(ExpressionError, match="is not available in workflow expressions"):
        expressions.evaluate(program, "x", {})


def test_time_builtins_that_do_not_read_the_time_zone_still_work() -> None:
    program = '[gmtime, (gmtime | mktime), todate, strftime("%H:%M")]'
    assert expressions.evaluate(program, 3600, {}) == [
        [1970, 0, 1, 1, 0, 0, 4, 0],
        3600,
        "1970-01-01T01:00:00Z",
        "01:00",
    ]


@pytest.mark.parametrize("program", ['import "m" as m; .', 'include "m"; .'])
def test_modules_cannot_be_loaded(program: str) -> None:
    assert expressions.check(program, []) is not None
    with pytest.raises(ExpressionError):
        expressions.evaluate(program, None, {})


@pytest.mark.parametrize(
    ("program", "builtin"),
    [
        ("[range(1e9)] | length", "range"),
        ("[range(5; 1e12)] | length", "range"),
        ("[range(0; 1e12; 7)] | length", "range"),
        ("last(repeat(1))", "repeat"),
        ("[0 | while(true; . + 1)] | length", "while"),
        ("0 | until(false; . + 1)", "until"),
        ("[1 | recurse(. + 1)] | length", "recurse"),
        ("[1 | recurse(. + 1; true)] | length", "recurse"),
    ],
)
def test_unbounded_generators_fail_with_the_iterations_budget(program: str, builtin: str) -> None:
    with pytest.raises(ExpressionBudgetError) as failure:
        expressions.evaluate(program, None, {}, SMALL)
    assert str(failure.value) == (
        f"{builtin} would run more than 1000 iterations (budget expressionIterations)"
    )


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ("[range(5)]", [0, 1, 2, 3, 4]),
        ("[range(10; 0; -3)]", [10, 7, 4, 1]),
        ("[range(0; 10; 0)]", []),
        ("[limit(4; 1 | repeat(. * 2))]", [2, 2, 2, 2]),
        ("[0 | while(. < 3; . + 1)]", [0, 1, 2]),
        ("0 | until(. > 3; . + 1)", 4),
        ("[1 | recurse(. + 1; . < 4)]", [1, 2, 3]),
        ("[[1, [2]] | ..]", [[1, [2]], 1, [2], 2]),
        ("[range(999)] | length", 999),
    ],
)
def test_bounded_generators_keep_jq_semantics(program: str, expected: object) -> None:
    assert expressions.evaluate(program, None, {}, SMALL) == expected


def test_a_result_larger_than_the_output_budget_fails() -> None:
    assert expressions.evaluate('"x" * 190', None, {}, SMALL) == "x" * 190
    with pytest.raises(
        ExpressionBudgetError,
        match=r"larger than 200 bytes serialised \(budget expressionOutputBytes\)",
    ):
        expressions.evaluate('"x" * 3000', None, {}, SMALL)
    with pytest.raises(ExpressionBudgetError):
        expressions.evaluate('"é" * 150', None, {}, SMALL)  # 300 bytes in 152 characters


def test_only_the_first_result_is_computed() -> None:
    assert expressions.evaluate('1, error("never reached")', None, {}) == 1
    assert expressions.evaluate("empty", None, {}) is None


def test_the_document_own_error_is_not_a_budget_error() -> None:
    with pytest.raises(ExpressionError) as failure:
        expressions.evaluate('error("boom")', None, {})
    assert not isinstance(failure.value, ExpressionBudgetError)
    assert str(failure.value) == "'error(\"boom\")': boom"


def test_each_program_is_compiled_once_and_only_named_arguments_are_serialised() -> None:
    program = "[., $item] | add  # compiled once"
    before = expressions._compiled.cache_info()
    # An argument the program does not name is never serialised (this one could not be).
    unused = {"workflow": object()}
    for item in range(50):
        assert expressions.evaluate(program, 1, {"item": item, **unused}) == 1 + item
    after = expressions._compiled.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 49


def test_env_is_empty_even_when_a_loop_variable_is_named_env() -> None:
    assert expressions.evaluate("[$ENV, env]", None, {}) == [{}, {}]
