"""`workflow-runner schedule apply|list|delete` as a process against the dev server: a document's
`schedule` becomes a Temporal Schedule that runs it."""

from __future__ import annotations

import asyncio
import pathlib
import sys
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
import yaml
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleOverlapPolicy,
)

from backend.common.temporal_dev_server import DevServer
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from tests.support.eventually import eventually
from tests.support.processes import child_env
from tests.workflow_runner import scenarios

pytestmark = pytest.mark.timeout(120)


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


async def cli(server: DevServer, *args: str, env: dict[str, str] | None = None) -> Ran:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "backend.workflow_runner.main",
        *args,
        env=child_env({"TEMPORAL_ADDRESS": server.address, **(env or {})}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def write(tmp_path: pathlib.Path, schedule: dict[str, object], name: str) -> pathlib.Path:
    document = {
        "document": {"dsl": "1.0.0", "namespace": "test", "name": name, "version": "1"},
        "schedule": schedule,
        "do": [{"hello": {"set": {"greeting": '${ "hello " + .who }'}}}],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


async def test_every_runs_the_document_and_list_and_delete_manage_it(
    temporal_server: DevServer, temporal_client: Client, task_queue: str, tmp_path: pathlib.Path
) -> None:
    name = f"every-{uuid.uuid4().hex[:8]}"
    path = write(tmp_path, {"every": {"seconds": 1}}, name)
    ident = f"dsl:test:{name}:1"
    async with build_worker(
        temporal_client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES
    ):
        applied = await cli(
            temporal_server,
            "schedule",
            "apply",
            str(path),
            "--input",
            '{"who": "ada"}',
            "--task-queue",
            task_queue,
        )
        assert applied.code == 0, applied.stderr
        assert '"schedule_id": "' + ident + '"' in applied.stdout
        assert '"result": "created"' in applied.stdout
        handle = temporal_client.get_schedule_handle(ident)
        description = await handle.describe()
        assert description.schedule.spec.intervals[0].every == timedelta(seconds=1)
        assert description.schedule.policy.overlap == ScheduleOverlapPolicy.ALLOW_ALL

        async def ran() -> object:
            actions = (await handle.describe()).info.recent_actions
            assert actions
            started = actions[0].action
            assert isinstance(started, ScheduleActionExecutionStartWorkflow)
            run = temporal_client.get_workflow_handle(started.workflow_id)
            return await run.result()

        assert await eventually(ran) == {"greeting": "hello ada"}

        again = await cli(
            temporal_server, "schedule", "apply", str(path), "--task-queue", task_queue
        )
        assert again.code == 0 and '"result": "updated"' in again.stdout

        async def listed() -> None:
            shown = await cli(temporal_server, "schedule", "list")
            assert shown.code == 0 and ident in shown.stdout.splitlines()

        await eventually(listed, timeout=60, every=1)
        deleted = await cli(temporal_server, "schedule", "delete", ident)
        assert deleted.code == 0 and deleted.stdout.strip() == f"deleted {ident}"
    missing = await cli(temporal_server, "schedule", "delete", ident)
    assert missing.code == 1 and f"no schedule {ident}" in missing.stderr


async def test_cron_and_after_become_schedules_that_skip_overlaps(
    temporal_server: DevServer, temporal_client: Client, tmp_path: pathlib.Path
) -> None:
    name = f"cron-{uuid.uuid4().hex[:8]}"
    cron = await cli(
        temporal_server, "schedule", "apply", str(write(tmp_path, {"cron": "0 0 * * *"}, name))
    )
    assert cron.code == 0, cron.stderr
    described = await temporal_client.get_schedule_handle(f"dsl:test:{name}:1").describe()
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert (
        described.schedule.spec.cron_expressions == ["0 0 * * *"]
        or described.schedule.spec.calendars
    )
    await temporal_client.get_schedule_handle(f"dsl:test:{name}:1").delete()

    name = f"after-{uuid.uuid4().hex[:8]}"
    after = await cli(
        temporal_server, "schedule", "apply", str(write(tmp_path, {"after": "PT1H"}, name))
    )
    assert after.code == 0, after.stderr
    described = await temporal_client.get_schedule_handle(f"dsl:test:{name}:1").describe()
    assert described.schedule.spec.intervals[0].every == timedelta(hours=1)
    assert described.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    await temporal_client.get_schedule_handle(f"dsl:test:{name}:1").delete()


async def test_apply_refuses_what_it_cannot_schedule(
    temporal_server: DevServer, tmp_path: pathlib.Path
) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(scenarios.inline("do: [{s: {set: {a: 1}}}]")))
    ran = await cli(temporal_server, "schedule", "apply", str(plain))
    assert ran.code == 1 and "has no `schedule`" in ran.stderr
    invalid = await cli(
        temporal_server, "schedule", "apply", str(write(tmp_path, {"cron": "soon"}, "bad"))
    )
    assert invalid.code == 1 and "/schedule/cron" in invalid.stderr
    on = write(tmp_path, {"on": {"one": {"with": {"type": "order.placed"}}}}, "on")
    ran = await cli(temporal_server, "schedule", "apply", str(on), env={"NATS_URL": ""})
    assert ran.code == 1 and "NATS_URL" in ran.stderr, ran.stderr


async def test_a_zigflow_schedule_is_made_as_zigflow_makes_it(
    temporal_server: DevServer, temporal_client: Client, task_queue: str
) -> None:
    fixture = scenarios.WORKFLOWS.parent / "zigflow_fixtures/zigflow/schedule/workflow.yaml"
    env = {"ZIGGY_EXAMPLE_ENVVAR": "some-example-envvar"}
    async with build_worker(
        temporal_client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES
    ):
        applied = await cli(
            temporal_server, "schedule", "apply", str(fixture), "--task-queue", task_queue, env=env
        )
        assert applied.code == 0, applied.stderr
        assert '"schedule_id": "some-schedule"' in applied.stdout
        handle = temporal_client.get_schedule_handle("some-schedule")
        try:
            described = await handle.describe()
            spec = described.schedule.spec
            assert [i.every for i in spec.intervals] == [timedelta(minutes=3)]
            # The server keeps a cron expression as the calendar it means: 00:00 every day.
            (calendar,) = spec.calendars
            assert [(r.start, r.end) for r in calendar.hour] == [(0, 0)]
            assert [(r.start, r.end) for r in calendar.minute] == [(0, 0)]
            action = described.schedule.action
            assert isinstance(action, ScheduleActionStartWorkflow)
            (argument,) = await temporal_client.data_converter.decode(action.args, [DslRunInput])
            assert argument.dialect == "zigflow" and argument.workflow_type == "schedule"
            assert argument.input == {"msg": ["hello", "world"], "envvars": "some-example-envvar"}
            await handle.trigger()

            async def ran() -> object:
                actions = (await handle.describe()).info.recent_actions
                assert actions
                started = actions[0].action
                assert isinstance(started, ScheduleActionExecutionStartWorkflow)
                return await temporal_client.get_workflow_handle(started.workflow_id).result()

            await eventually(ran, timeout=60, every=1)
        finally:
            await handle.delete()
