"""`migrate`: a Zigflow-dialect document rewritten as standard DSL 1.0, every construct without a
standard form named; over every vendored fixture, and as the packaged program."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import pytest
import yaml

from backend.workflow_runner.dsl import loader
from backend.workflow_runner.dsl.dialects import migrate as migration
from backend.workflow_runner.dsl.dialects import migrate_expressions as scan
from tests.support.processes import child_env

FIXTURES = pathlib.Path(__file__).parent.parent / "zigflow_fixtures"
ALL_FIXTURES = sorted(FIXTURES.glob("golden/*.yaml")) + sorted(
    FIXTURES.glob("zigflow/*/workflow.yaml")
)
INVALID = FIXTURES / "zigflow/invalid/workflow.yaml"
HEADER = {"dsl": "1.0.0", "taskQueue": "zigflow", "workflowType": "test", "version": "0.0.1"}


def migrated(tasks: list[Any], **block: Any) -> migration.Migration:
    return migration.migrate({"document": {**HEADER, **block}, "do": tasks})


def gaps(result: migration.Migration) -> dict[str, str]:
    return {gap.path: gap.construct for gap in result.unmigrated}


def test_header_names_follow_the_standard_pattern_and_keep_the_originals() -> None:
    result = migrated(
        [{"a": {"set": {"x": 1}}}], taskQueue="MoneyTransfer", workflowType="Account_Flow"
    )
    block = result.document["document"]
    assert (block["namespace"], block["name"]) == ("money-transfer", "account-flow")
    assert block["metadata"]["zigflow"] == {
        "taskQueue": "MoneyTransfer",
        "workflowType": "Account_Flow",
    }
    assert "taskQueue" not in block and "workflowType" not in block
    assert {c.path for c in result.changes} == {"/document/namespace", "/document/name"}
    assert loader.validate(result.document, "standard") == []
    assert result.unmigrated == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [("MoneyTransfer", "money-transfer"), ("HTTPServer", "http-server"), ("a__b", "a-b")],
)
def test_standard_name(value: str, expected: str) -> None:
    assert scan.standard_name(value) == expected
    assert migration.NAME_PATTERN.match(expected)


def test_the_older_forks_header_and_description() -> None:
    header: dict[str, Any] = {"dsl": "1.0.0", "namespace": "golden", "name": "flow"}
    header.update(version="1.0.0", description="What it does")
    document = {"document": header, "do": [{"a": {"set": {"x": 1}}}]}
    result = migration.migrate(document)
    block = result.document["document"]
    assert (block["namespace"], block["name"], block["summary"]) == (
        "golden",
        "flow",
        "What it does",
    )
    assert "metadata" not in block  # the names were standard already: nothing to keep
    assert [c.construct for c in result.changes] == ["document.description"]
    # With a summary, the description goes to metadata instead.
    header["summary"] = "Short"
    block = migration.migrate(document).document["document"]
    assert (block["summary"], block["metadata"]["description"]) == ("Short", "What it does")


def test_display_tags_and_mcp_stay_in_metadata() -> None:
    meta = {"display": False, "tags": ["x"], "mcp": {"enabled": True}}
    result = migrated([{"a": {"set": {"x": 1}}}], metadata=meta)
    assert {k: result.document["document"]["metadata"][k] for k in meta} == meta
    assert result.unmigrated == []


def test_listen_metadata_timeout_becomes_timeout_after() -> None:
    listen = {"listen": {"to": {"one": {"with": {"type": "com.example.approved"}}}}}
    result = migrated([{"wait": {**listen, "metadata": {"timeout": "1m30s"}}}])
    task = result.document["do"][0]["wait"]
    assert task["timeout"] == {"after": "PT1M30S"} and "metadata" not in task
    assert scan.go_duration_to_iso("10s") == "PT10S"
    assert scan.go_duration_to_iso("2h0.5s") == "PT2H0.5S"
    with pytest.raises(ValueError, match="Go duration"):
        scan.go_duration_to_iso("ten seconds")


def test_literal_wait_stays_and_the_wait_extension_is_a_gap() -> None:
    result = migrated(
        [{"a": {"wait": {"seconds": 5}}}, {"b": {"wait": {"until": "${ $input.at }"}}}]
    )
    assert result.document["do"][0]["a"] == {"wait": {"seconds": 5}}
    assert gaps(result) == {"/do/1/b/wait": "wait with expressions or until"}


def test_input_is_the_workflow_input_after_the_first_task() -> None:
    result = migrated(
        [
            {"first": {"set": {"a": "${ $input.a }"}, "if": "${ $input.go }"}},
            {"second": {"set": {"b": '${ "\\($input.b) $input" + ($input | tostring) }'}}},
        ]
    )
    first, second = (next(iter(t.values())) for t in result.document["do"])
    assert first["set"]["a"] == "${ $input.a }"  # the spec's $input is the workflow input here
    assert first["if"] == "${ $workflow.input.go }"  # ... but `if` has no $input in the spec
    # Interpolations are code; the text of a string literal is not.
    assert second["set"]["b"] == (
        '${ "\\($workflow.input.b) $input" + ($workflow.input | tostring) }'
    )
    assert [c.path for c in result.changes if c.construct == "$input"] == [
        "/do/0/first/if",
        "/do/1/second/set/b",
    ]


@pytest.mark.parametrize(
    ("expression", "construct"),
    [
        ("${ $data.fetchUser.id }", "$data"),
        ("${ $env.TOKEN }", "$env"),
        ("${ uuid }", "uuid()"),
        ("${ timestamp }", "timestamp()"),
        ("${ timestamp_iso8601 }", "timestamp_iso8601()"),
        ("${ now }", "now()"),
    ],
)
def test_zigflow_variables_and_functions_are_gaps(expression: str, construct: str) -> None:
    result = migrated([{"a": {"set": {"x": expression}}}])
    assert gaps(result) == {"/do/0/a/set/x": construct}
    assert result.document["do"][0]["a"]["set"]["x"] == expression


def test_a_field_or_a_message_named_like_a_function_is_not_a_call() -> None:
    result = migrated([{"a": {"set": {"x": '${ $context.uuid + "now" + $input.timestamp }'}}}])
    assert result.unmigrated == []


@pytest.mark.parametrize("expression", ["${ . }", "${ .a + .b }", "${ [.[0]] }", "${ 1 + .n }"])
def test_dot_in_a_tasks_own_fields_is_a_gap(expression: str) -> None:
    # Zigflow evaluates a task's own fields with `.` null; the spec reads the task input there.
    result = migrated([{"a": {"set": {"x": expression}}}])
    assert gaps(result) == {"/do/0/a/set/x": ". (input)"}


@pytest.mark.parametrize(
    "expression", ["${ $data.a.b }", "${ ($context).x }", "${ 1.5 }", '${ "a.b" }', "${ .. }"]
)
def test_dot_that_does_not_read_the_input_is_not_a_gap(expression: str) -> None:
    result = migrated([{"a": {"set": {"x": expression}}}])
    assert ". (input)" not in gaps(result).values()


def test_dot_in_output_and_export_is_the_tasks_result_in_both() -> None:
    task = {"set": {"x": 1}, "output": {"as": "${ .x }"}, "export": {"as": {"y": "${ .x }"}}}
    assert migrated([{"a": task}]).unmigrated == []


@pytest.mark.parametrize(
    ("task", "path", "construct"),
    [
        (
            {"call": "activity", "with": {"name": "a", "taskQueue": "q"}},
            "/do/0/t",
            "call: activity",
        ),
        ({"call": "grpc", "with": {}}, "/do/0/t", "call: grpc"),
        ({"run": {"shell": {"command": "ls"}}}, "/do/0/t", "run: shell"),
        ({"run": {"container": {"image": "x"}}}, "/do/0/t", "run: container"),
        ({"run": {"script": {"language": "js", "code": "1"}}}, "/do/0/t", "run: script"),
        ({"run": {"workflow": {"type": "x"}}}, "/do/0/t", "run: workflow"),
        (
            {"listen": {"to": {"one": {"with": {"id": "approve", "type": "signal"}}}}},
            "/do/0/t",
            "listen type: signal",
        ),
        (
            {"listen": {"to": {"one": {"with": {"id": "state", "type": "query"}}}}},
            "/do/0/t",
            "listen type: query",
        ),
        (
            {"set": {}, "metadata": {"searchAttributes": {"k": {"type": "text", "value": "v"}}}},
            "/do/0/t/metadata/searchAttributes",
            "metadata.searchAttributes",
        ),
        (
            {"set": {}, "metadata": {"heartbeat": "5s"}},
            "/do/0/t/metadata/heartbeat",
            "metadata.heartbeat",
        ),
        (
            {"set": {}, "metadata": {"activityOptions": {"startToCloseTimeout": {"seconds": 5}}}},
            "/do/0/t/metadata/activityOptions",
            "metadata.activityOptions",
        ),
    ],
)
def test_task_constructs_without_a_standard_form(
    task: dict[str, Any], path: str, construct: str
) -> None:
    result = migrated([{"t": task}])
    assert gaps(result) == {path: construct}
    assert all(gap.reason for gap in result.unmigrated)


def test_document_metadata_without_a_standard_form() -> None:
    meta = {
        "activityOptions": {"startToCloseTimeout": {"seconds": 5}},
        "canMaxHistoryLength": 10,
        "scheduleWorkflowName": "test",
    }
    result = migration.migrate(
        {
            "document": {**HEADER, "metadata": meta},
            "schedule": {"every": {"minutes": 1}, "cron": "* * * * *"},
            "do": [{"a": {"set": {"x": 1}}}],
        }
    )
    assert gaps(result) == {
        "/document/metadata/activityOptions": "metadata.activityOptions",
        "/document/metadata/canMaxHistoryLength": "metadata.canMaxHistoryLength",
        "/document/metadata/scheduleWorkflowName": "metadata.scheduleWorkflowName",
        "/schedule": "schedule with every and cron",
    }


def test_duplicate_task_names_are_renamed_unless_a_then_names_them() -> None:
    result = migrated([{"w": {"wait": {"seconds": 1}}}, {"w": {"wait": {"seconds": 2}}}])
    assert [next(iter(t)) for t in result.document["do"]] == ["w", "w-2"]
    assert loader.validate(result.document, "standard") == []
    jumped = migrated([{"w": {"set": {}}}, {"s": {"set": {}, "then": "w"}}, {"w": {"set": {}}}])
    assert gaps(jumped) == {"/do/2/w": "duplicate task name"}


def test_multi_workflow_files() -> None:
    document = {
        "document": HEADER,
        "do": [
            {"First": {"do": [{"a": {"set": {"x": 1}}}]}},
            {"second": {"do": [{"b": {"set": {"y": 2}}}]}},
        ],
    }
    result = migration.migrate(document)
    assert result.document["do"] == [{"a": {"set": {"x": 1}}}]
    assert result.document["document"]["name"] == "first"
    assert gaps(result) == {"/do": "multi-workflow file"}
    chosen = migration.migrate(document, "second")
    assert chosen.document["do"] == [{"b": {"set": {"y": 2}}}] and chosen.unmigrated == []
    assert "multi-workflow file" in [c.construct for c in chosen.changes]
    with pytest.raises(KeyError, match="third"):
        migration.migrate(document, "third")


def test_a_do_after_a_non_do_task_is_another_workflow_and_then_to_it_is_a_gap() -> None:
    result = migrated(
        [
            {"route": {"switch": [{"go": {"when": "${ true }", "then": "other"}}]}},
            {"other": {"do": [{"a": {"set": {"x": 1}}}]}},
        ]
    )
    assert gaps(result) == {
        "/do/1/other": "do after a non-do task",
        "/do/0/route/switch/0/go/then": "then: <other workflow>",
    }


# -- every vendored fixture ---------------------------------------------------------------------


def test_there_are_fifty_fixtures() -> None:
    assert len(ALL_FIXTURES) == 50


@pytest.mark.parametrize(
    "path", [p for p in ALL_FIXTURES if p != INVALID], ids=lambda p: str(p.relative_to(FIXTURES))
)
def test_every_fixture_migrates_or_names_what_has_no_standard_form(path: pathlib.Path) -> None:
    document = loader.parse(path.read_text(encoding="utf-8"))
    assert loader.validate(document, "zigflow") == []
    result = migration.migrate(document)
    problems = loader.validate(result.document, "standard")
    if not result.unmigrated:
        assert problems == []
    unnamed = [str(p) for p in problems if not migration.covered(p.path, result.unmigrated)]
    assert unnamed == []
    # The document survives YAML as the command writes it.
    text = yaml.safe_dump(result.document, sort_keys=False)
    assert loader.parse(text) == result.document


# -- the packaged program -----------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend.workflow_runner.main", "migrate", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_program_migrates_a_fixture_completely(tmp_path: pathlib.Path) -> None:
    ran = run_cli(str(FIXTURES / "zigflow/hello-world/workflow.yaml"))
    assert ran.returncode == 0, ran.stderr
    assert loader.validate(loader.parse(ran.stdout), "standard") == []
    assert "changed /document/namespace" in ran.stderr
    out = tmp_path / "out.yaml"
    ran = run_cli(str(FIXTURES / "golden/01-operation-basic.yaml"), "--output", str(out))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == ""
    assert loader.validate(loader.parse(out.read_text()), "standard") == []


def test_program_names_the_gaps_with_exit_2() -> None:
    ran = run_cli(str(FIXTURES / "zigflow/activity-call/workflow.yaml"))
    assert ran.returncode == 2, ran.stderr
    assert "not migrated /do/1/fetchProfile: call: activity:" in ran.stderr
    assert "not migrated /do/0/captureInput/set/requestId: uuid():" in ran.stderr
    assert "please report" not in ran.stderr
    assert yaml.safe_load(ran.stdout)["document"]["name"] == "activity-call"


def test_program_refuses_an_invalid_zigflow_document_with_exit_1() -> None:
    ran = run_cli(str(INVALID))
    assert ran.returncode == 1
    assert "/document/taskQueue" in ran.stderr and "ERR_INVALID_TASK_QUEUE" in ran.stderr
    assert ran.stdout == ""
    missing = run_cli("/nonexistent/flow.yaml")
    assert missing.returncode == 1 and "cannot read" in missing.stderr
