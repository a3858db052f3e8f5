"""`schedule apply` of the specification's event-driven schedule (`on`) end to end: the CLI as a
process writes the start registration, the router starts one DslWorkflow per matching event on
the runner's worker, a redelivered event starts nothing twice, `list` shows it and `delete`
removes it."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from backend.common import nats_server, temporal_dev_server
from backend.workflow_runner.events import broker as broker_module
from tests.events.dsl_events import SPEC_EXAMPLES, cloud_event, publish_all, router_idle
from tests.support.processes import child_env
from tests.support.recording_server import recording_server

pytestmark = pytest.mark.timeout(90)

SCHEDULE_ID = "dsl:examples:event-driven-schedule:0.1.0"
HEARTBEAT_LOW = "com.example.hospital.events.patients.heartbeat.low"
NOTIFY = "https://hospital.example.com/api/v1/notify"


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "backend.workflow_runner.main",
        *args,
        env=child_env(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def heartbeat(patient: str, bpm: int) -> dict[str, Any]:
    data = {
        "patient": {"id": patient, "name": "Ada", "room": {"number": 12}, "vitals": {"bpm": bpm}},
        "timestamp": "2026-01-01T00:00:00Z",
    }
    return cloud_event(HEARTBEAT_LOW, data)


@pytest.mark.usefixtures("dsl_worker")
async def test_schedule_on_starts_one_workflow_per_event_and_delete_stops_it(
    tmp_path: pathlib.Path,
    embedded_nats: nats_server.NatsServer,
    temporal_server: temporal_dev_server.DevServer,
    temporal_client: Client,
    task_queue: str,
    broker: broker_module.Broker,
    start_router: Callable[..., Any],
) -> None:
    env = {"NATS_URL": embedded_nats.url, "TEMPORAL_ADDRESS": temporal_server.address}
    first_router = f"e2e-{uuid.uuid4().hex[:8]}"
    start_router(consumer=first_router)
    await router_idle(broker, first_router)  # Older events go by before the schedule exists.
    with recording_server() as server:
        text = (SPEC_EXAMPLES / "schedule-event-driven.yaml").read_text(encoding="utf-8")
        document = tmp_path / "schedule-event-driven.yaml"
        document.write_text(text.replace(NOTIFY, server.url + "/echo"), encoding="utf-8")
        code, out, err = await cli(
            env, "schedule", "apply", str(document), "--task-queue", task_queue
        )
        assert code == 0, err
        assert json.loads(out) == {"schedule_id": SCHEDULE_ID, "kind": "on", "result": "registered"}
        code, out, err = await cli(env, "schedule", "list")
        assert code == 0 and SCHEDULE_ID in out.splitlines(), err

        events = [heartbeat("p-1", 38), heartbeat("p-2", 41)]
        await publish_all(broker, [*events, cloud_event("com.example.hospital.other")])
        await router_idle(broker, first_router)
        # A second consumer delivers the same events again, as a redelivery would.
        second_router = f"e2e-{uuid.uuid4().hex[:8]}"
        start_router(consumer=second_router)
        await router_idle(broker, second_router)
        for event in events:
            handle = temporal_client.get_workflow_handle(f"{SCHEDULE_ID}-{event['id']}")
            await asyncio.wait_for(handle.result(), 30)
        bodies = sorted((json.loads(r.body) for r in server.received), key=lambda b: b["patientId"])
        assert [(b["patientId"], b["vitals"]["heartRate"]) for b in bodies] == [
            ("p-1", 38),
            ("p-2", 41),
        ]
        assert bodies[0]["roomNumber"] == 12 and bodies[0]["patientName"] == "Ada"

        code, out, err = await cli(env, "schedule", "delete", SCHEDULE_ID)
        assert code == 0 and out.strip() == f"deleted {SCHEDULE_ID}", err
        code, out, _ = await cli(env, "schedule", "list")
        assert code == 0 and SCHEDULE_ID not in out.splitlines()
        after = heartbeat("p-3", 30)
        await publish_all(broker, [after])
        await router_idle(broker, first_router)
        await router_idle(broker, second_router)
        with pytest.raises(RPCError) as missing:
            await temporal_client.get_workflow_handle(f"{SCHEDULE_ID}-{after['id']}").describe()
        assert missing.value.status == RPCStatusCode.NOT_FOUND
        assert len(server.received) == 2
    code, _, err = await cli(env, "schedule", "delete", SCHEDULE_ID)
    assert code == 1 and f"no schedule {SCHEDULE_ID}" in err
