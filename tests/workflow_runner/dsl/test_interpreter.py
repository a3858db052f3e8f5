"""The interpreter, task by task, with fake runners (no Temporal)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from backend.workflow_runner.agent_call.models import CallAgentInput
from backend.workflow_runner.dsl import errors
from backend.workflow_runner.dsl.errors import DslError, DslException
from backend.workflow_runner.interpreter import Interpreter
from backend.workflow_runner.models import HttpCallInput
from tests.workflow_runner.dsl.fakes import FakeRunners, document, run


async def test_set_evaluates_expressions_against_the_input() -> None:
    result = await run(
        """
do:
  - greet:
      set:
        greeting: ${ "hello " + .name }
        fixed: 42
        nested: {list: ["${ .name | ascii_upcase }", 1]}
""",
        {"name": "ada"},
    )
    assert result == {"greeting": "hello ada", "fixed": 42, "nested": {"list": ["ADA", 1]}}


async def test_each_task_input_is_the_previous_output() -> None:
    result = await run(
        """
do:
  - one: {set: {a: 1}}
  - two: {set: {b: "${ .a + 1 }"}}
  - three: {set: {c: "${ .b + 1 }", sawInput: "${ $input }"}}
"""
    )
    assert result == {"c": 3, "sawInput": {"b": 2}}


async def test_input_from_output_as_and_export_as() -> None:
    result = await run(
        """
input:
  from: ${ .payload }
do:
  - first:
      input: {from: "${ {n: .n} }"}
      set: {doubled: "${ .n * 2 }"}
      output: {as: "${ .doubled }"}
      export: {as: "${ $context + {first: .} }"}
  - second:
      set: {fromContext: "${ $context.first }", input: "${ . }"}
output:
  as: ${ .fromContext + .input }
""",
        {"payload": {"n": 21, "other": True}},
    )
    assert result == 84


async def test_workflow_task_and_runtime_arguments() -> None:
    result = await run(
        """
do:
  - describe:
      set:
        id: ${ $workflow.id }
        input: ${ $workflow.input }
        name: ${ $task.name }
        reference: ${ $task.reference }
        started: ${ $workflow.startedAt.iso8601 }
        runtime: ${ $runtime.name }
""",
        {"x": 1},
    )
    assert result == {
        "id": "wf-1",
        "input": {"x": 1},
        "name": "describe",
        "reference": "/do/0/describe",
        "started": "2026-01-02T03:04:05+00:00",
        "runtime": "stigmer-workflow-runner",
    }


async def test_jq_cannot_read_the_environment_or_the_clock() -> None:
    result = await run("do:\n  - a: {set: {env: '${ $ENV }', env2: '${ env }'}}")
    assert result == {"env": {}, "env2": {}}
    with pytest.raises(DslException) as failure:
        await run("do:\n  - a: {set: {t: '${ now }'}}")
    assert failure.value.error.type == errors.EXPRESSION
    assert failure.value.error.instance == "/do/0/a"


async def test_if_skips_the_task_and_passes_the_input_through() -> None:
    text = """
do:
  - maybe:
      if: ${ .go }
      set: {ran: true}
"""
    assert await run(text, {"go": True}) == {"ran": True}
    assert await run(text, {"go": False}) == {"go": False}


SWITCH = """
do:
  - route:
      switch:
        - big:
            when: ${ .n > 10 }
            then: bigTask
        - small:
            when: .n > 0
            then: smallTask
        - other:
            then: end
  - bigTask:
      set: {size: big}
      then: exit
  - smallTask:
      set: {size: small}
"""


@pytest.mark.parametrize(("n", "expected"), [(50, {"size": "big"}), (3, {"size": "small"})])
async def test_switch_jumps_to_the_matching_case(n: int, expected: Any) -> None:
    assert await run(SWITCH, {"n": n}) == expected


async def test_switch_default_case_ends_the_workflow_with_the_current_data() -> None:
    assert await run(SWITCH, {"n": -1}) == {"n": -1}


async def test_switch_without_match_or_default_continues() -> None:
    text = """
do:
  - route:
      switch:
        - never: {when: "false", then: skipped}
  - next: {set: {went: next}}
  - skipped: {set: {went: skipped}}
"""
    assert await run(text) == {"went": "skipped"}


async def test_then_can_jump_backwards_into_a_loop() -> None:
    text = """
do:
  - inc:
      set: {n: "${ .n + 1 }"}
  - check:
      switch:
        - again: {when: "${ .n < 5 }", then: inc}
"""
    assert await run(text, {"n": 0}) == {"n": 5}


async def test_then_end_inside_nested_do_ends_the_whole_workflow() -> None:
    text = """
do:
  - outer:
      do:
        - inner: {set: {stopped: true}, then: end}
        - notReached: {set: {stopped: false}}
  - alsoNotReached: {set: {stopped: false}}
"""
    assert await run(text) == {"stopped": True}


async def test_then_exit_leaves_only_the_current_list() -> None:
    text = """
do:
  - outer:
      do:
        - inner: {set: {step: inner}, then: exit}
        - notReached: {set: {step: wrong}}
  - after: {set: {step: '${ .step + "-after" }'}}
"""
    assert await run(text) == {"step": "inner-after"}


async def test_for_each_in_at_threads_output_through_iterations() -> None:
    text = """
do:
  - loop:
      for: {each: color, in: .colors, at: i}
      do:
        - add:
            set:
              seen: "${ (.seen // []) + [{color: $color, i: $i}] }"
"""
    result = await run(text, {"colors": ["red", "green"]})
    assert result == {"seen": [{"color": "red", "i": 0}, {"color": "green", "i": 1}]}


async def test_for_default_names_and_while() -> None:
    text = """
do:
  - start: {set: {total: 0, items: [1, 2, 3, 4]}}
  - loop:
      for: {in: "${ .items }"}
      while: ${ .total < 3 }
      do:
        - add: {set: {total: "${ .total + $item }", last: "${ $index }", items: "${ .items }"}}
"""
    result = await run(text)
    assert result == {"total": 3, "last": 1, "items": [1, 2, 3, 4]}


async def test_for_over_a_non_list_is_a_validation_error() -> None:
    with pytest.raises(DslException) as failure:
        await run("do:\n  - loop: {for: {in: .x}, do: [{a: {set: {}}}]}", {"x": 5})
    assert failure.value.error.type == errors.VALIDATION
    assert failure.value.error.instance == "/do/0/loop"


async def test_fork_runs_all_branches_and_collects_outputs_in_order() -> None:
    text = """
do:
  - both:
      fork:
        branches:
          - slow: {do: [{w: {wait: {seconds: 1}}}, {s: {set: {b: slow}}}]}
          - fast: {set: {b: fast}}
"""
    runners = FakeRunners()
    result = await run(text, {}, runners)
    assert result == [{"b": "slow"}, {"b": "fast"}]
    assert runners.sleeps == [1.0]


async def test_fork_compete_returns_the_first_branch_and_cancels_the_rest() -> None:
    import asyncio

    cancelled = asyncio.Event()

    class Runners(FakeRunners):
        async def sleep(self, seconds: float) -> None:
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    text = """
do:
  - race:
      fork:
        compete: true
        branches:
          - slow: {do: [{w: {wait: {seconds: 30}}}, {s: {set: {winner: slow}}}]}
          - fast: {set: {winner: fast}}
"""
    result = await asyncio.wait_for(run(text, {}, Runners()), 5)
    assert result == {"winner": "fast"}
    assert cancelled.is_set()


async def test_fork_branch_failure_fails_the_fork() -> None:
    text = """
do:
  - both:
      fork:
        branches:
          - ok: {set: {}}
          - bad: {raise: {error: {type: "https://example.com/bad", status: 400}}}
"""
    with pytest.raises(DslException) as failure:
        await run(text)
    assert failure.value.error.instance == "/do/0/both/fork/branches/1/bad"


async def test_raise_carries_the_dsl_error_shape() -> None:
    text = """
do:
  - fail:
      raise:
        error:
          type: https://serverlessworkflow.io/spec/1.0.0/errors/validation
          status: 400
          title: Bad order
          detail: ${ "order " + .id + " is empty" }
"""
    with pytest.raises(DslException) as failure:
        await run(text, {"id": "o-1"})
    assert failure.value.error == DslError(
        errors.VALIDATION, 400, "Bad order", "order o-1 is empty", "/do/0/fail"
    )


async def test_raise_a_named_error_from_use() -> None:
    text = """
use:
  errors:
    notFound: {type: "https://example.com/not-found", status: 404, title: Missing}
do:
  - fail: {raise: {error: notFound}}
"""
    with pytest.raises(DslException) as failure:
        await run(text)
    assert failure.value.error.to_dict() == {
        "type": "https://example.com/not-found",
        "status": 404,
        "title": "Missing",
        "detail": "",
        "instance": "/do/0/fail",
    }


TRY = """
do:
  - guarded:
      try:
        - fail:
            raise:
              error: {type: "https://example.com/%(kind)s", status: %(status)s, detail: boom}
      catch:
        errors:
          with: {type: "https://example.com/expected"}
        as: problem
        when: ${ $problem.status != 418 }
        exceptWhen: ${ $problem.detail == "never" }
        do:
          - handle:
              set:
                handled: ${ $problem.type }
                status: ${ $problem.status }
                instance: ${ $problem.instance }
"""


async def test_try_catch_filters_by_type_and_exposes_the_error() -> None:
    result = await run(TRY % {"kind": "expected", "status": 500})
    assert result == {
        "handled": "https://example.com/expected",
        "status": 500,
        "instance": "/do/0/guarded/try/0/fail",
    }


@pytest.mark.parametrize(("kind", "status"), [("other", 500), ("expected", 418)])
async def test_try_does_not_catch_errors_outside_the_filter(kind: str, status: int) -> None:
    with pytest.raises(DslException) as failure:
        await run(TRY % {"kind": kind, "status": status})
    assert failure.value.error.type == f"https://example.com/{kind}"


async def test_catch_without_do_swallows_the_error_and_outputs_the_input() -> None:
    text = """
do:
  - guarded:
      try:
        - fail: {raise: {error: {type: "https://example.com/x", status: 500}}}
      catch: {}
"""
    assert await run(text, {"kept": 1}) == {"kept": 1}


async def test_retry_with_exponential_backoff_until_success() -> None:
    attempts: list[CallAgentInput] = []

    def agent(call: CallAgentInput) -> dict[str, Any]:
        attempts.append(call)
        if len(attempts) < 3:
            raise DslException(
                DslError("ModelError", 500, "Agent call failed", "flaky", call.task_path)
            )
        return {"output": "ok", "execution_id": "ex-3"}

    text = """
do:
  - guarded:
      try:
        - ask: {call: agent, with: {agent: writer, message: hi}}
      catch:
        errors: {with: {type: ModelError}}
        retry:
          delay: {seconds: 2}
          backoff: {exponential: {}}
          limit: {attempt: {count: 5}}
"""
    runners = FakeRunners(agent=agent)
    assert await run(text, {}, runners) == {"output": "ok", "execution_id": "ex-3"}
    assert runners.sleeps == [2.0, 4.0]


async def test_retry_gives_up_after_the_limit_then_runs_catch_do() -> None:
    def agent(call: CallAgentInput) -> dict[str, Any]:
        raise DslException(DslError("ModelError", 500, "Agent call failed", "down", call.task_path))

    text = """
use:
  retries:
    twice: {delay: PT1S, backoff: {linear: {}}, limit: {attempt: {count: 2}}}
do:
  - guarded:
      try:
        - ask: {call: agent, with: {agent: writer, message: hi}}
      catch:
        retry: twice
        do:
          - fallback: {set: {answer: "${ \\"fallback after \\" + $error.detail }"}}
"""
    runners = FakeRunners(agent=agent)
    assert await run(text, {}, runners) == {"answer": "fallback after down"}
    assert len(runners.agent_calls) == 3
    assert runners.sleeps == [1.0, 2.0]


async def test_wait_sleeps_for_iso_and_object_durations() -> None:
    runners = FakeRunners()
    text = "do:\n  - a: {wait: PT1M30S}\n  - b: {wait: {seconds: 2, milliseconds: 500}}"
    assert await run(text, {"same": 1}, runners) == {"same": 1}
    assert runners.sleeps == [90.0, 2.5]


async def test_call_agent_builds_the_input_with_secret_placeholders() -> None:
    text = """
use:
  secrets: [apiKey]
do:
  - ask:
      call: agent
      with:
        agent: ${ .agent }
        org: acme
        message: ${ "Summarise " + .topic }
        env: {KEY: "${ $secrets.apiKey }", PLAIN: plain}
        config: {model: openai/gpt-4o, timeout: PT5M, temperature: 0.2}
        session: s-1
      output: {as: "${ .output }"}
"""
    runners = FakeRunners(agent=lambda call: {"output": "summary", "execution_id": "ex-1"})
    assert await run(text, {"agent": "writer", "topic": "DSLs"}, runners) == "summary"
    [sent] = runners.agent_calls
    seal = sent.secret_seal
    assert re.fullmatch("[0-9a-f]{32}", seal)
    assert runners.agent_calls == [
        CallAgentInput(
            agent="writer",
            message="Summarise DSLs",
            org="acme",
            scope="organization",
            env={"KEY": "{{secret:" + seal + ":apiKey}}", "PLAIN": "plain"},
            model="openai/gpt-4o",
            timeout_seconds=300.0,
            temperature=0.2,
            session_id="s-1",
            task_path="/do/0/ask",
            secret_seal=seal,
            secret_names=["apiKey"],
        )
    ]


async def test_call_http_builds_the_request() -> None:
    text = """
do:
  - get:
      call: http
      with:
        method: post
        endpoint: {uri: "${ \\"http://example.test/items/\\" + .id }"}
        headers: {X-Id: "${ .id }"}
        query: {q: one}
        body: {name: "${ .id }"}
        output: response
"""
    runners = FakeRunners(http=lambda call: {"statusCode": 200})
    assert await run(text, {"id": "7"}, runners) == {"statusCode": 200}
    assert runners.http_calls == [
        HttpCallInput(
            method="POST",
            uri="http://example.test/items/7",
            headers={"X-Id": "7"},
            query={"q": "one"},
            body={"name": "7"},
            output="response",
            task_path="/do/0/get",
        )
    ]


async def test_expression_failure_names_the_task() -> None:
    with pytest.raises(DslException) as failure:
        await run("do:\n  - a: {set: {x: 1}}\n  - b: {set: {y: '${ .x + \"s\" }'}}")
    assert failure.value.error.type == errors.EXPRESSION
    assert failure.value.error.instance == "/do/1/b"
    assert "cannot be added" in failure.value.error.detail


async def test_input_schema_violation_is_a_validation_error() -> None:
    text = """
input:
  schema:
    format: json
    document: {type: object, required: [name]}
do:
  - a: {set: {}}
"""
    with pytest.raises(DslException) as failure:
        await run(text, {})
    assert failure.value.error.type == errors.VALIDATION
    assert failure.value.error.instance == "/input"


async def test_task_timeout_raises_a_timeout_error() -> None:
    import asyncio

    class Runners(FakeRunners):
        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(seconds)

    text = "do:\n  - slow: {wait: PT10S, timeout: {after: {milliseconds: 50}}}"
    with pytest.raises(DslException) as failure:
        await asyncio.wait_for(run(text, {}, Runners()), 5)
    assert failure.value.error.type == errors.TIMEOUT
    assert failure.value.error.status == 408
    assert failure.value.error.instance == "/do/0/slow"


async def test_progress_records_completed_skipped_and_failed_tasks() -> None:
    interpreter = Interpreter(
        document(
            """
do:
  - a: {set: {}}
  - b: {if: "false", set: {}}
  - c: {raise: {error: {type: "https://example.com/x", status: 500}}}
"""
        ),
        FakeRunners(),
        "wf",
    )
    with pytest.raises(DslException):
        await interpreter.run({})
    assert [(p.path, p.status, p.error_type) for p in interpreter.progress] == [
        ("/do/0/a", "completed", ""),
        ("/do/1/b", "skipped", ""),
        ("/do/2/c", "failed", "https://example.com/x"),
    ]


async def test_bare_strings_in_input_from_output_as_and_export_as_are_expressions() -> None:
    result = await run(
        """
input:
  from: .payload
do:
  - first:
      input: {from: "{n: .n}"}
      set: {doubled: "${ .n * 2 }", all: [1, 2]}
      output: {as: ".all"}
      export: {as: "{first: .[0]}"}
  - second:
      set: {fromContext: "${ $context.first }", list: "${ . }"}
output:
  as: .fromContext + (.list | length)
""",
        {"payload": {"n": 21}},
    )
    assert result == 3


async def test_an_object_transform_keeps_its_plain_strings_literal() -> None:
    result = await run(
        """
do:
  - a:
      set: {n: 1}
      output: {as: {kind: ".n is literal here", n: "${ .n }"}}
"""
    )
    assert result == {"kind": ".n is literal here", "n": 1}
