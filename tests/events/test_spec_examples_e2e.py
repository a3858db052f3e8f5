"""The specification's listen and emit examples end to end: DslWorkflow on the runner's worker,
the real event activities on the embedded NATS, the router in-process, events published by the
test (one through `workflow-runner emit` as a process). A local server stands in for the
examples' outside HTTP services."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError

from backend.common import nats_server
from backend.workflow_runner.events import broker as broker_module
from backend.workflow_runner.events import contract, registrations
from tests.events.dsl_events import (
    cloud_event,
    listener_keys,
    publish_all,
    registered,
    router_idle,
    spec_example,
    start,
)
from tests.support.eventually import eventually
from tests.support.processes import child_env
from tests.support.recording_server import recording_server

pytestmark = pytest.mark.timeout(90)

TEMPERATURE = "com.fake-hospital.vitals.measurements.temperature"
BPM = "com.fake-hospital.vitals.measurements.bpm"
CHECKED_OUT = "com.fake-hospital.patient.checked-out"


@pytest.fixture
async def routed(broker: broker_module.Broker, start_router: Callable[..., Any]) -> str:
    """A router of this test, idle once it has gone through the stream's older events."""
    consumer = f"e2e-{uuid.uuid4().hex[:8]}"
    start_router(consumer=consumer)
    await router_idle(broker, consumer)
    return consumer


async def run_listen(
    client: Client,
    task_queue: str,
    broker: broker_module.Broker,
    name: str,
    events: list[dict[str, Any]],
) -> Any:
    """Runs the example `name`, publishes `events` once it listens, returns its output."""
    handle = await start(client, task_queue, spec_example(name))
    await registered(handle)
    await publish_all(broker, events)
    return await asyncio.wait_for(handle.result(), 30)


@pytest.mark.usefixtures("dsl_worker", "routed")
async def test_listen_to_one_takes_an_event_emitted_from_the_cli(
    temporal_client: Client, task_queue: str, embedded_nats: nats_server.NatsServer
) -> None:
    with recording_server() as server:
        document = spec_example(
            "listen-to-one",
            {"https://virtual-wf-powered-race.com/api/v4/cars/{carId}/start": server.url + "/echo"},
        )
        handle = await start(temporal_client, task_queue, document)
        await registered(handle)
        emitted = subprocess.run(
            [
                *_runner("emit"),
                "--type",
                "com.virtual-wf-powered-race.events.race.started.v1",
                "--source",
                "/race",
                "--data",
                '{"race": 7}',
            ],
            env=child_env({"NATS_URL": embedded_nats.url}),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert emitted.returncode == 0, emitted.stderr
        assert json.loads(emitted.stdout)["duplicate"] is False
        output = await asyncio.wait_for(handle.result(), 30)
        assert [r.method for r in server.received] == ["POST"]
    assert output["body"] == ""  # The call's answer: the echo of a POST without a body.


@pytest.mark.usefixtures("dsl_worker", "routed")
async def test_listen_to_any_takes_the_first_event_of_any_type(
    temporal_client: Client, task_queue: str, broker: broker_module.Broker
) -> None:
    first = cloud_event(f"test.any.{uuid.uuid4().hex}", {"n": 1})
    second = cloud_event(f"test.any.{uuid.uuid4().hex}", {"n": 2})
    output = await run_listen(temporal_client, task_queue, broker, "listen-to-any", [first, second])
    assert output == [{"n": 1}]


@pytest.mark.usefixtures("dsl_worker", "routed")
async def test_listen_to_all_waits_for_each_filter(
    temporal_client: Client, task_queue: str, broker: broker_module.Broker
) -> None:
    events = [
        cloud_event(TEMPERATURE, {"temperature": 37}),  # Filtered out: not above 38.
        cloud_event(BPM, {"bpm": 50}),
        cloud_event(BPM, {"bpm": 45}),  # The bpm filter is met already.
        cloud_event(TEMPERATURE, {"temperature": 39}),
    ]
    output = await run_listen(temporal_client, task_queue, broker, "listen-to-all", events)
    assert output == [{"bpm": 50}, {"temperature": 39}]


@pytest.mark.usefixtures("dsl_worker", "routed")
async def test_listen_to_all_read_envelope_outputs_whole_events(
    temporal_client: Client, task_queue: str, broker: broker_module.Broker
) -> None:
    events = [cloud_event(TEMPERATURE, {"temperature": 40}), cloud_event(BPM, {"bpm": 120})]
    output = await run_listen(
        temporal_client, task_queue, broker, "listen-to-all-read-envelope", events
    )
    assert [(e["id"], e["type"], e["data"]) for e in output] == [
        (e["id"], e["type"], e["data"]) for e in events
    ]
    assert all(e["specversion"] == "1.0" and e["source"] == "/tests/e2e" for e in output)


@pytest.mark.usefixtures("dsl_worker", "routed")
async def test_listen_to_any_filter_takes_the_first_matching_event(
    temporal_client: Client, task_queue: str, broker: broker_module.Broker
) -> None:
    events = [
        cloud_event(TEMPERATURE, {"temperature": 36}),
        cloud_event(BPM, {"bpm": 80}),
        cloud_event(BPM, {"bpm": 130}),
    ]
    output = await run_listen(temporal_client, task_queue, broker, "listen-to-any-filter", events)
    assert output == [{"bpm": 130}]


@pytest.mark.usefixtures("dsl_worker", "routed")
async def test_listen_until_condition_stops_after_four_events(
    temporal_client: Client, task_queue: str, broker: broker_module.Broker
) -> None:
    kind = f"test.until.{uuid.uuid4().hex}"
    events = [cloud_event(kind, {"n": n}) for n in range(6)]
    output = await run_listen(
        temporal_client, task_queue, broker, "listen-to-any-until-condition", events
    )
    # `( . | length ) > 3` is checked after each consumed event: it holds at the fourth.
    assert output == [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]


@pytest.mark.usefixtures("dsl_worker", "routed")
async def test_listen_until_consumed_stops_at_the_until_event(
    temporal_client: Client, task_queue: str, broker: broker_module.Broker
) -> None:
    events = [
        cloud_event(TEMPERATURE, {"temperature": 39}),
        cloud_event(BPM, {"bpm": 70}),  # Matches no filter.
        cloud_event(BPM, {"bpm": 40}),
        cloud_event(CHECKED_OUT, {"patient": "p-1"}),
        cloud_event(TEMPERATURE, {"temperature": 41}),  # After the end.
    ]
    output = await run_listen(
        temporal_client, task_queue, broker, "listen-to-any-until-consumed", events
    )
    assert output == [{"temperature": 39}, {"bpm": 40}]


@pytest.mark.usefixtures("dsl_worker", "routed")
async def test_listen_forever_foreach_posts_each_event_until_cancelled(
    temporal_client: Client, task_queue: str, broker: broker_module.Broker
) -> None:
    kind = f"test.gossip.{uuid.uuid4().hex}"
    events = [cloud_event(kind, {"gossip": n}) for n in range(3)]
    with recording_server() as server:
        document = spec_example(
            "listen-to-any-forever-foreach",
            {"https://fake-chat-api.com/room/{roomId}": server.url + "/echo"},
        )
        handle = await start(temporal_client, task_queue, document)
        await registered(handle)
        await publish_all(broker, events)

        async def posted() -> None:
            assert len(server.received) == len(events)

        await eventually(posted, timeout=30)
        bodies = [json.loads(r.body) for r in server.received]
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 30)
    # `item: event` names each consumed event, read as `data` (the default): its payload.
    assert bodies == [{"event": {"gossip": n}} for n in range(3)]

    async def unregistered() -> None:
        prefix = registrations.listener_key(handle.id, "").rsplit(".", 1)[0] + "."
        mine = [key for key in await listener_keys(broker) if key.startswith(prefix)]
        assert mine == [], mine

    await eventually(unregistered, timeout=15)


@pytest.mark.usefixtures("dsl_worker")
async def test_emit_publishes_the_event_as_its_output_says(
    temporal_client: Client, task_queue: str, broker: broker_module.Broker
) -> None:
    handle = await start(temporal_client, task_queue, spec_example("emit"))
    output = await asyncio.wait_for(handle.result(), 30)
    stored = await broker.js.get_last_msg(
        contract.STREAM, broker_module.subject_for("com.petstore.order.placed.v1")
    )
    assert json.loads(stored.data or b"") == output
    assert (
        stored.headers is not None and stored.headers[broker_module.MSG_ID_HEADER] == output["id"]
    )
    assert output["source"] == "https://petstore.com"
    assert output["data"]["items"] == [{"breed": "dalmatian", "quantity": 101}]


def _runner(*args: str) -> list[str]:
    return [sys.executable, "-m", "backend.workflow_runner.main", *args]
