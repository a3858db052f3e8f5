"""Validation: every problem is reported with its path, before anything runs."""

from __future__ import annotations

import pathlib

import pytest

from backend.workflow_runner.dsl import loader

HEADER = "document: {dsl: 1.0.0, namespace: test, name: t, version: '1'}\n"


def problems(text: str) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in loader.validate(loader.parse(HEADER + text))]


def test_a_valid_document_has_no_problems() -> None:
    assert problems("do:\n  - a: {set: {x: '${ .y }'}}") == []


def test_example_workflows_are_valid() -> None:
    folder = pathlib.Path(__file__).parent.parent / "workflows"
    files = sorted(folder.glob("*.yaml"))
    assert files
    for file in files:
        assert loader.validate(loader.parse(file.read_text())) == [], file


def test_unknown_task_type_names_the_task() -> None:
    [(path, message)] = problems("do:\n  - a: {set: {}}\n  - b: {frobnicate: {}}")
    assert path == "/do/1/b"
    assert "unknown task type" in message


def test_unsupported_task_type_is_rejected() -> None:
    [(path, message)] = problems("do:\n  - a: {run: {shell: {command: ls}}}")
    assert (path, message) == ("/do/0/a", "task type 'run' is not supported")


def test_bad_jq_names_the_field() -> None:
    found = problems(
        """
do:
  - outer:
      do:
        - inner:
            set: {x: "${ .a + }"}
  - check:
      switch:
        - c: {when: ".x ==", then: continue}
"""
    )
    assert [path for path, _ in found] == [
        "/do/0/outer/do/0/inner/set/x",
        "/do/1/check/switch/0/c/when",
    ]
    assert all("invalid expression" in message for _, message in found)


def test_undefined_variable_is_a_bad_expression_but_loop_variables_are_known() -> None:
    found = problems(
        """
do:
  - loop:
      for: {each: fruit, in: .fruits}
      do:
        - ok: {set: {f: "${ $fruit }", i: "${ $index }"}}
        - bad: {set: {f: "${ $vegetable }"}}
  - guarded:
      try: [{a: {set: {}}}]
      catch:
        as: oops
        when: ${ $oops.status == 500 }
        do: [{b: {set: {e: "${ $error }"}}}]
"""
    )
    assert [path for path, _ in found] == [
        "/do/0/loop/do/1/bad/set/f",
        "/do/1/guarded/catch/do/0/b/set/e",
    ]
    assert "$vegetable is not defined" in found[0][1]


def test_bad_then_target_names_the_field() -> None:
    found = problems(
        """
do:
  - a: {set: {}, then: nowhere}
  - b:
      switch:
        - c: {when: "true", then: alsoNowhere}
  - c:
      do:
        - d: {set: {}, then: a}
"""
    )
    assert [path for path, _ in found] == [
        "/do/0/a/then",
        "/do/1/b/switch/0/c/then",
        "/do/2/c/do/0/d/then",
    ]
    assert "'nowhere' is neither continue, exit, end nor a task of the same list" in found[0][1]


def test_structural_problems_are_all_reported() -> None:
    found = problems(
        """
do:
  - a: {set: {}, unknownField: 1}
  - b: {call: http, with: {endpoint: http://x}}
  - c: {call: grpc, with: {}}
  - d: {wait: soon}
  - e: {for: {in: .x}}
  - a: {set: {}}
  - f: {raise: {error: missing}}
  - g: {try: [{x: {set: {}}}], catch: {retry: unknownPolicy}}
"""
    )
    assert found == [
        ("/do/5/a", "duplicate task name 'a' in this list"),
        ("/do/0/a", "Additional properties are not allowed ('unknownField' was unexpected)"),
        ("/do/1/b/with", "'method' is a required property"),
        ("/do/2/c/call", "call 'grpc' is not supported; expected one of http, agent"),
        ("/do/3/d/wait", "'soon' is not an ISO 8601 duration (e.g. PT1M30S)"),
        ("/do/4/e", "'do' is a required property"),
        ("/do/6/f/raise/error", "unknown error 'missing' (see use.errors)"),
        ("/do/7/g/catch/retry", "unknown retry policy 'unknownPolicy' (see use.retries)"),
    ]


def test_document_header_is_checked() -> None:
    found = [(p.path, p.message) for p in loader.validate(loader.parse("do:\n  - a: {set: {}}"))]
    assert found == [("", "'document' is a required property")]


def test_input_schema_must_be_a_json_schema_and_input_is_checked_against_it() -> None:
    found = problems("input: {schema: {document: {type: 12}}}\ndo:\n  - a: {set: {}}")
    assert [path for path, _ in found] == ["/input/schema/document"]
    document = loader.parse(
        HEADER
        + """
input:
  schema:
    format: json
    document:
      type: object
      required: [name]
      properties: {age: {type: integer}}
do:
  - a: {set: {}}
"""
    )
    assert loader.validate_input(document, {"name": "x", "age": 3}) == []
    found_input = [(p.path, p.message) for p in loader.validate_input(document, {"age": "old"})]
    assert found_input == [
        ("/input", "workflow input does not match input.schema: 'name' is a required property"),
        (
            "/input/age",
            "workflow input does not match input.schema: 'old' is not of type 'integer'",
        ),
    ]


def test_load_text_raises_with_every_problem() -> None:
    with pytest.raises(loader.InvalidDocumentError) as failure:
        loader.load_text(HEADER + "do:\n  - a: {nope: 1}\n  - b: {set: '${ ( }'}")
    assert [p.path for p in failure.value.problems] == ["/do/0/a", "/do/1/b/set"]
    assert "/do/0/a: unknown task type" in str(failure.value)


def test_not_yaml_is_a_problem() -> None:
    with pytest.raises(loader.InvalidDocumentError) as failure:
        loader.load_text("do: [unclosed")
    assert failure.value.problems[0].path == ""


def test_a_bare_transform_expression_is_compiled_at_validation() -> None:
    [(path, message)] = problems("do:\n  - a: {set: {x: 1}, output: {as: '.x +'}}")
    assert path == "/do/0/a/output/as"
    assert message.startswith("invalid expression")
