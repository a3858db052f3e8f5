"""The vendored Zigflow-dialect fixtures (issue 18): every one validates (the deliberately invalid
one fails with its task queue named) and every one that needs no outside service runs on the dev
server with the result its upstream test asserts (zigflow_fixtures/expectations.yaml).

"""

from __future__ import annotations

import asyncio
import datetime
import json
import pathlib
import re
import uuid
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from backend.workflow_runner.dsl import dialects, loader
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow
from tests.workflow_runner.scenarios import FAKE_AGENT_ACTIVITIES

pytestmark = pytest.mark.timeout(180)

FIXTURES = pathlib.Path(__file__).parent / "zigflow_fixtures"
EXPECTATIONS: list[dict[str, Any]] = yaml.safe_load(
    (FIXTURES / "expectations.yaml").read_text(encoding="utf-8")
)["fixtures"]

# Placeholders of expectations.yaml for values upstream checks by shape (internal/e2etest/assert.go).
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_LENGTH = re.compile(r"^<length:(\d+)>$")


def _dialect(entry: dict[str, Any]) -> str | None:
    # The golden files use the standard header (document.name/namespace): let detection decide.
    return "zigflow" if entry["fixture"].startswith("zigflow/") else None


def _id(entry: dict[str, Any]) -> str:
    return str(entry["fixture"])


# -- partial match ------------------------------------------------------------------------------


def mismatches(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where `actual` differs from the partial expectation (empty when it matches)."""
    if isinstance(expected, str) and expected.startswith("<") and expected.endswith(">"):
        return _placeholder(expected, actual, path)
    if isinstance(expected, dict) and set(expected) == {"<exact>"}:
        return [] if actual == expected["<exact>"] else [f"{path}: {actual!r} != {expected!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        found: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                found.append(f"{path}.{key}: missing")
            else:
                found += mismatches(value, actual[key], f"{path}.{key}")
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        return [
            m
            for i, (e, a) in enumerate(zip(expected, actual, strict=False))
            for m in mismatches(e, a, f"{path}[{i}]")
        ]
    # JSON numbers: upstream decodes every number as float64, so 3 == 3.0.
    return [] if actual == expected else [f"{path}: {actual!r} != {expected!r}"]


def _placeholder(kind: str, actual: Any, path: str) -> list[str]:
    length = _LENGTH.match(kind)
    ok = {
        "<present>": True,
        "<uuid>": isinstance(actual, str) and bool(_UUID.match(actual)),
        "<non-empty-string>": isinstance(actual, str) and actual != "",
        "<number>": isinstance(actual, int | float) and not isinstance(actual, bool),
        "<integer>": isinstance(actual, int | float)
        and not isinstance(actual, bool)
        and float(actual).is_integer(),
        "<datetime>": isinstance(actual, str) and bool(_DATETIME.match(actual)),
        "<iso8601-utc>": isinstance(actual, str) and bool(_ISO_UTC.match(actual)),
    }.get(kind)
    if length:
        ok = isinstance(actual, list | dict) and len(actual) == int(length.group(1))
    if ok is None:
        raise AssertionError(f"unknown placeholder {kind} in expectations.yaml")
    return [] if ok else [f"{path}: {actual!r} is not {kind}"]


def test_self_test_the_partial_match() -> None:
    assert (
        mismatches(
            {"a": 1, "b": {"c": "<uuid>"}}, {"a": 1.0, "b": {"c": str(uuid.uuid4())}, "x": 2}
        )
        == []
    )
    assert mismatches({"a": "<length:2>"}, {"a": [1]}) == ["$.a: [1] is not <length:2>"]
    assert mismatches({"a": {"<exact>": {"b": 1}}}, {"a": {"b": 1, "c": 2}}) != []
    assert mismatches(["<uuid>", {"h": "w"}], ["nope", {"h": "w"}]) != []
    assert mismatches({"n": "<integer>"}, {"n": 3.5}) != []


# -- (a) validation -----------------------------------------------------------------------------


def test_the_expectations_cover_every_fixture() -> None:
    vendored = {
        str(p.relative_to(FIXTURES))
        for p in [*FIXTURES.glob("golden/*.yaml"), *FIXTURES.glob("zigflow/*/workflow.yaml")]
    }
    assert sorted(_id(e) for e in EXPECTATIONS) == sorted(vendored)
    assert len(vendored) == 50


@pytest.mark.parametrize("entry", [e for e in EXPECTATIONS if not e["expected_error"]], ids=_id)
def test_fixture_validates(entry: dict[str, Any]) -> None:
    document = loader.parse((FIXTURES / entry["fixture"]).read_text(encoding="utf-8"))
    assert loader.validate(document, _dialect(entry)) == []


def test_the_invalid_fixture_names_its_task_queue() -> None:
    entry = next(e for e in EXPECTATIONS if e["fixture"] == "zigflow/invalid/workflow.yaml")
    document = loader.parse((FIXTURES / entry["fixture"]).read_text(encoding="utf-8"))
    problems = loader.validate(document, "zigflow")
    assert len(problems) == 1, problems
    assert problems[0].path.replace("/", ".").strip(".") == "document.taskQueue", problems
    assert "ERR_INVALID_TASK_QUEUE" in problems[0].message, problems


# -- (b) runs on the dev server -----------------------------------------------------------------

RUNNABLE = [
    e
    for e in EXPECTATIONS
    if e["outside_services"] == []
    and (e["expected_error"] or {}).get("stage") != "validation"
    # schedule: the upstream test checks a Temporal schedule, not a run (expected_schedule).
    and "expected_schedule" not in e
]


def _input(entry: dict[str, Any]) -> Any:
    value = entry["input"]
    if entry["fixture"] == "zigflow/wait/workflow.yaml":
        # Upstream computes sendAt at test time: one minute ago, RFC 3339 UTC.
        past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
        value = {**value, "sendAt": past.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return value


def _run_input(entry: dict[str, Any], document: dict[str, Any]) -> DslRunInput:
    # The run is told the dialect the loader detected (golden files: from their header) and,
    # for a file of several workflows, which one upstream starts.
    dialect = dialects.resolve(document, _dialect(entry)).value
    return DslRunInput(document, _input(entry), dialect, entry["workflow_type"])


async def _interact(handle: WorkflowHandle[Any, Any], entry: dict[str, Any]) -> None:
    for step in entry["interactions"]:
        if step["kind"] == "signal":
            await handle.signal(step["name"], step["payload"])
        elif step["kind"] == "update":
            await handle.execute_update(step["name"], step["payload"])
        elif step["kind"] == "query":
            # query: upstream queries 3 s after the start and checks the state's shape.
            await asyncio.sleep(3)
            answer = await handle.query(step["name"])
            assert mismatches(step["expect"], answer) == [], answer
        else:
            raise AssertionError(f"unknown interaction {step['kind']}")


async def run_as_upstream(client: Client, entry: dict[str, Any], task_queue: str) -> Any:
    """Runs the fixture on a worker of this process as its upstream test does (its input, its
    interactions) and checks what upstream checks: the failure it expects (None), or its
    result (returned)."""
    document = loader.load_file(FIXTURES / entry["fixture"], _dialect(entry))
    async with build_worker(client, task_queue, agent_activities=FAKE_AGENT_ACTIVITIES):
        handle = await client.start_workflow(
            DslWorkflow.run,
            _run_input(entry, document),
            id=f"{task_queue}-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        await _interact(handle, entry)
        if entry["completes"] is False:
            with pytest.raises(WorkflowFailureError):
                await asyncio.wait_for(handle.result(), 150)
            return None
        result = await asyncio.wait_for(handle.result(), 150)
    if entry["expected_output"] is not None:
        assert mismatches(entry["expected_output"], result) == [], result
    for fragment in entry.get("output_must_not_contain") or []:
        assert fragment not in json.dumps(result)
    return result


@pytest.mark.parametrize("entry", RUNNABLE, ids=_id)
async def test_fixture_runs_as_upstream_expects(
    entry: dict[str, Any], temporal_client: Client
) -> None:
    await run_as_upstream(temporal_client, entry, f"zigflow-fixtures-{uuid.uuid4()}")
