"""`run: shell` and `run: script` (run_tasks.py) on the real dev server: off by default, argv and
environment as the document gives them, bounded output, a timeout that kills the process group,
and the vendored Zigflow fixtures that run processes.
"""

from __future__ import annotations

import asyncio
import copy
import pathlib
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import ActivityEnvironment

from backend.workflow_runner.dsl import loader
from backend.workflow_runner.models import DslRunInput, RunProcessInput
from backend.workflow_runner.run_tasks import RunTasks, RunTaskSettings
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow
from tests.workflow_runner import zigflow_documents
from tests.workflow_runner.scenarios import FAKE_AGENT_ACTIVITIES

pytestmark = pytest.mark.timeout(90)

FIXTURES = pathlib.Path(__file__).parent / "zigflow_fixtures" / "zigflow"
BOTH = RunTaskSettings(frozenset({"shell", "script"}))


async def _run(
    client: Client,
    task_queue: str,
    document: dict[str, Any],
    settings: RunTaskSettings | None = BOTH,
    workflow_input: Any = None,
) -> Any:
    result, _ = await zigflow_documents.run(
        client, task_queue, document, workflow_input, timeout=60, run_tasks=settings
    )
    return result


async def _failure(
    client: Client, task_queue: str, document: dict[str, Any], settings: RunTaskSettings | None
) -> str:
    return await zigflow_documents.failure(client, task_queue, document, run_tasks=settings)


async def test_shell_echo_and_its_arguments_as_argv(
    temporal_client: Client, task_queue: str
) -> None:
    document = zigflow_documents.document(
        """
do:
  - greet:
      run:
        shell:
          command: echo
          arguments: ["hello ${not-expanded}", "${ $input.name }"]
"""
    )
    output = await _run(temporal_client, task_queue, document, workflow_input={"name": "ziggy"})
    # Argv, never a shell string: `${not-expanded}` reaches echo as it is; stdout trimmed.
    assert output == "hello ${not-expanded} ziggy"


async def test_environment_is_the_documents_plus_path_only(
    temporal_client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_TEST_WORKER_SECRET", "do-not-leak")
    document = zigflow_documents.document(
        """
do:
  - env:
      run:
        shell:
          command: env
          environment:
            GREETING: hello
            COUNT: ${ 1 + 2 }
"""
    )
    output = await _run(temporal_client, task_queue, document)
    variables = dict(line.split("=", 1) for line in output.splitlines())
    assert variables["GREETING"] == "hello" and variables["COUNT"] == "3"
    assert set(variables) <= {"GREETING", "COUNT", "PATH", "PWD"}
    assert "do-not-leak" not in output


async def test_a_non_zero_exit_fails_the_run_with_the_code_and_stderr(
    temporal_client: Client, task_queue: str
) -> None:
    document = zigflow_documents.document(
        """
do:
  - fail:
      run:
        shell:
          command: sh
          arguments: ["-c", "echo something broke >&2; exit 3"]
"""
    )
    cause = await _failure(temporal_client, task_queue, document, BOTH)
    assert "exited with code 3" in cause and "something broke" in cause
    assert "runtime" in cause and "/do/0/fail" in cause


async def test_a_timeout_kills_the_whole_process_group(
    temporal_client: Client, task_queue: str
) -> None:
    marker = f"{30 + uuid.uuid4().int % 1000 / 1000:.3f}"  # A sleep no other test runs.
    document = zigflow_documents.document(
        f"""
do:
  - slow:
      metadata:
        activityOptions:
          startToCloseTimeout:
            seconds: 1
      run:
        shell:
          command: sh
          arguments: ["-c", "sleep {marker} & sleep {marker}"]
"""
    )
    started = time.monotonic()
    cause = await _failure(temporal_client, task_queue, document, BOTH)
    assert time.monotonic() - started < 10
    assert "timed out" in cause and "was killed" in cause
    assert _processes_with(marker) == []


async def test_a_cancelled_run_kills_its_process(temporal_client: Client, task_queue: str) -> None:
    # The process's own timeout is 60 s: the workflow's cancellation reaches the activity on a
    # heartbeat's answer (so heartbeat often here), and the activity kills the process.
    marker = f"{40 + uuid.uuid4().int % 1000 / 1000:.3f}"
    document = zigflow_documents.document(
        f"""
do:
  - slow:
      metadata:
        heartbeat:
          seconds: 1
        activityOptions:
          heartbeatTimeout:
            seconds: 2
      run:
        shell:
          command: sleep
          arguments: ["{marker}"]
"""
    )
    async with build_worker(
        temporal_client, task_queue, agent_activities=FAKE_AGENT_ACTIVITIES, run_tasks=BOTH
    ):
        handle = await temporal_client.start_workflow(
            DslWorkflow.run,
            DslRunInput(document, None, "zigflow"),
            id=f"run-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        await _eventually(lambda: _processes_with(marker) != [])
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 30)
        await _eventually(lambda: _processes_with(marker) == [])


async def _eventually(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.1)


def _processes_with(text: str) -> list[str]:
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


async def test_output_is_bounded(temporal_client: Client, task_queue: str) -> None:
    document = zigflow_documents.document(
        f"""
do:
  - loud:
      run:
        shell:
          command: {sys.executable}
          arguments: ["-c", "print('x' * 50000)"]
"""
    )
    settings = RunTaskSettings(frozenset({"shell"}), output_max_bytes=1000)
    output = await _run(temporal_client, task_queue, document, settings)
    assert output.startswith("x" * 1000)
    assert output.endswith("[output truncated: 49001 more bytes]")


async def test_off_by_default_with_a_clear_error_and_nothing_run(
    temporal_client: Client,
    task_queue: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STIGMER_RUN_TASKS", raising=False)
    touched = tmp_path / "ran"
    document = zigflow_documents.document(
        f"""
do:
  - touch:
      run:
        shell:
          command: touch
          arguments: ["{touched}"]
"""
    )
    cause = await _failure(temporal_client, task_queue, document, None)  # from the environment
    assert "STIGMER_RUN_TASKS" in cause and "configuration" in cause
    assert not touched.exists()
    # Allowing only scripts does not allow shell commands.
    scripts_only = RunTaskSettings(frozenset({"script"}))
    cause = await _failure(temporal_client, task_queue, document, scripts_only)
    assert "STIGMER_RUN_TASKS=shell" in cause
    assert not touched.exists()


async def test_python_script_with_arguments_and_environment(
    temporal_client: Client, task_queue: str
) -> None:
    document = zigflow_documents.document(
        """
do:
  - python:
      run:
        script:
          language: python
          code: |
            import os
            import sys

            print(f"{sys.argv[1]} {sys.argv[2]} from {os.environ['NAME']}")
          arguments:
            - Hello
            - ${ $input.who }
          environment:
            NAME: python
"""
    )
    output = await _run(temporal_client, task_queue, document, workflow_input={"who": "world"})
    assert output == "Hello world from python"


async def test_js_script_sees_its_arguments_where_node_puts_them(
    temporal_client: Client, task_queue: str
) -> None:
    document = zigflow_documents.document(
        """
do:
  - nodejs:
      run:
        script:
          language: js
          code: |
            console.log(`${process.argv[2]} from ${process.env.NAME}`);
          arguments:
            - Hello
          environment:
            NAME: js
"""
    )
    if shutil.which("node") is None:  # The worker says what it needs.
        cause = await _failure(temporal_client, task_queue, document, BOTH)
        assert "needs `node` on the worker's PATH" in cause
    else:
        assert await _run(temporal_client, task_queue, document) == "Hello from js"


async def test_heartbeat_fixture_keeps_a_process_past_its_heartbeat_timeout(
    temporal_client: Client, task_queue: str
) -> None:
    # The vendored fixture, scaled down (8 s heartbeats, a 10 s timeout, sleep 30): heartbeats
    # every 1 s against a 2 s timeout, sleep 4; without heartbeats the activity would time out.
    document = yaml.safe_load((FIXTURES / "heartbeat" / "workflow.yaml").read_text())
    task = document["do"][0]["longRunningActivity"]
    task["metadata"]["heartbeat"] = {"seconds": 1}
    task["metadata"]["activityOptions"]["heartbeatTimeout"] = {"seconds": 2}
    task["run"]["shell"]["arguments"] = ["4"]
    assert loader.validate(document, "zigflow") == []
    started = time.monotonic()
    assert await _run(temporal_client, task_queue, document) == ""
    assert time.monotonic() - started >= 4


async def test_priority_and_fairness_fixture(temporal_client: Client, task_queue: str) -> None:
    document = yaml.safe_load((FIXTURES / "priority-and-fairness" / "workflow.yaml").read_text())
    faster = copy.deepcopy(document)
    faster["do"][1]["shell"]["run"]["shell"]["arguments"] = ["1"]  # upstream sleeps 5 s
    workflow_input = {"priorityKey": 1, "fairnessKey": "tenant-a", "fairnessWeight": 1}
    output = await _run(temporal_client, task_queue, faster, workflow_input=workflow_input)
    assert output["data"]["message"] == "Priority and Fairness demo"
    assert output["data"]["priorityKey"] == 1 and output["data"]["fairnessKey"] == "tenant-a"


# -- the activity alone (ActivityEnvironment): what the Zigflow schema cannot express yet ---------


def _call(**fields: Any) -> RunProcessInput:
    return RunProcessInput(**{"kind": "shell", "timeout_seconds": 10.0, **fields})


async def test_return_modes_and_stdin() -> None:
    env = ActivityEnvironment()
    activity = RunTasks(BOTH).run_process
    script = ["-c", "read line; echo out $line; echo err >&2; exit 2"]
    all_ = await env.run(
        activity, _call(command="sh", arguments=script, stdin="in\n", return_mode="all")
    )
    assert all_.value == {"code": 2, "stdout": "out in", "stderr": "err"}
    code = await env.run(activity, _call(command="sh", arguments=script, return_mode="code"))
    assert code.value == 2  # asking for the code: a non-zero exit is not a failure
    ok = ["-c", "echo err >&2"]
    assert (
        await env.run(activity, _call(command="sh", arguments=ok, return_mode="stderr"))
    ).value == "err"
    assert (
        await env.run(activity, _call(command="sh", arguments=ok, return_mode="none"))
    ).value is None


async def test_script_sources_stay_inside_the_operators_directory(tmp_path: pathlib.Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "hello.py").write_text("import sys; print('hi', sys.argv[1])\n")
    (tmp_path / "outside.py").write_text("print('outside')\n")
    env = ActivityEnvironment()
    activity = RunTasks(RunTaskSettings(frozenset({"script"}), tmp_path / "scripts")).run_process

    def script(source: str) -> RunProcessInput:
        return _call(kind="script", language="python", source=source, arguments=["there"])

    assert (await env.run(activity, script("file://./hello.py"))).value == "hi there"
    for refused in ("file://../outside.py", f"file://{tmp_path}/outside.py", "https://x/a.py"):
        with pytest.raises(Exception, match="outside STIGMER_RUN_SCRIPTS_DIR|only file://"):
            await env.run(activity, script(refused))
    without = RunTasks(RunTaskSettings(frozenset({"script"}))).run_process
    with pytest.raises(Exception, match="STIGMER_RUN_SCRIPTS_DIR"):
        await env.run(without, script("file://./hello.py"))


async def test_stderr_in_errors_hides_the_environments_values() -> None:
    call = _call(
        command="sh",
        arguments=["-c", 'echo "token $TOKEN rejected" >&2; exit 1'],
        environment={"TOKEN": "s3cr3t-value"},
    )
    with pytest.raises(Exception) as failed:
        await ActivityEnvironment().run(RunTasks(BOTH).run_process, call)
    assert "token *** rejected" in str(failed.value) and "s3cr3t" not in str(failed.value)


def test_settings_from_the_environment(tmp_path: pathlib.Path) -> None:
    assert RunTaskSettings.from_env({}).enabled == frozenset()
    settings = RunTaskSettings.from_env(
        {"STIGMER_RUN_TASKS": " shell, script ", "STIGMER_RUN_SCRIPTS_DIR": str(tmp_path)}
    )
    assert settings.enabled == {"shell", "script"} and settings.scripts_dir == tmp_path.resolve()
    with pytest.raises(ValueError, match="STIGMER_RUN_TASKS: unknown kind.*container"):
        RunTaskSettings.from_env({"STIGMER_RUN_TASKS": "shell,container"})
