"""The router and `emit` as the processes an operator runs: kill -9 of the router while 100
workflows wait, with events published during the outage; `emit` from a shell."""

from __future__ import annotations

import asyncio
import json
import pathlib
import subprocess
import sys
import uuid

from temporalio.client import Client

from backend.common import nats_server, temporal_dev_server
from backend.workflow_runner.events import broker as broker_module
from tests.events.dsl_events import cloud_event, publish_all, registered, signalled_event_ids, start
from tests.events.listening import FINISH_SIGNAL, RECORD_QUERY, ListenArgs, Record
from tests.support.eventually import eventually
from tests.support.processes import Process, child_env, wait_for_log
from tests.workflow_runner import scenarios

WORKFLOWS = 100
# The DslWorkflow variant: fewer (each runs three activities besides the signal), so that the
# suite's heaviest files do not starve the others sharing the two cores.
DSL_WORKFLOWS = 20


def runner_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "backend.workflow_runner.main", *args]


def router_process(tmp_path: pathlib.Path, nats: nats_server.NatsServer, temporal: str) -> Process:
    env = child_env({"NATS_URL": nats.url, "TEMPORAL_ADDRESS": temporal})
    # A short ack wait: an event the killed router held comes back quickly.
    return Process("router", runner_argv("router", "--ack-wait", "2"), env, tmp_path / "router.log")


async def test_kill_9_of_the_router_loses_and_repeats_no_event(
    tmp_path: pathlib.Path,
    embedded_nats: nats_server.NatsServer,
    temporal_server: temporal_dev_server.DevServer,
    temporal_client: Client,
    task_queue: str,
    broker: broker_module.Broker,
    listening_worker: object,
) -> None:
    run = uuid.uuid4().hex[:8]
    types = [f"test.kill.{run}.{i}" for i in range(WORKFLOWS)]
    ids = [f"waiter-{run}-{i}" for i in range(WORKFLOWS)]
    for workflow_id, event_type in zip(ids, types, strict=True):
        await temporal_client.start_workflow(
            "EventListeningTest", ListenArgs([event_type]), id=workflow_id, task_queue=task_queue
        )

    async def records() -> list[Record]:
        handles = [temporal_client.get_workflow_handle(i) for i in ids]
        return list(
            await asyncio.gather(*(h.query(RECORD_QUERY, result_type=Record) for h in handles))
        )

    async def all_registered() -> None:
        assert all(r.since_sequence >= 0 for r in await records())

    await eventually(all_registered, timeout=60)
    router = router_process(tmp_path, embedded_nats, temporal_server.address)
    router.start()
    try:
        await wait_for_log(router, "router started")
        events = [
            {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/kill", "type": t}
            for t in types
        ]
        half = WORKFLOWS // 2
        for event in events[:half]:
            await broker.publish(event)
        router.kill()  # Mid-delivery: some of the first half are routed, some are not.
        for event in events[half:]:
            await broker.publish(event)  # The outage: nobody routes these yet.
        router.start()
        await wait_for_log(router, "router started")

        async def every_event_arrived() -> list[Record]:
            got = await records()
            assert [r.event_ids for r in got] == [[e["id"]] for e in events]
            return got

        await eventually(every_event_arrived, timeout=60)
    finally:
        router.stop()
    for workflow_id, event in zip(ids, events, strict=True):
        handle = temporal_client.get_workflow_handle(workflow_id, result_type=Record)
        await handle.signal(FINISH_SIGNAL)
        record = await handle.result()
        # Each workflow got its event exactly once; a signal repeated by a redelivery (the
        # event's ack was lost with the router) was dropped by its id.
        assert record.event_ids == [event["id"]]
        assert record.signals >= 1


def test_emit_as_a_process_prints_the_id_and_sequence(
    tmp_path: pathlib.Path, embedded_nats: nats_server.NatsServer
) -> None:
    env = child_env({"NATS_URL": embedded_nats.url})
    data = tmp_path / "data.json"
    data.write_text('{"approved": true}', encoding="utf-8")
    argv = runner_argv(
        "emit", "--type", "test.emit", "--source", "/cli", "--subject", "T-1", "--data", f"@{data}"
    )
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["sequence"] > 0 and printed["duplicate"] is False
    again = subprocess.run(
        [*argv, "--id", printed["id"]], env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and json.loads(again.stdout)["duplicate"] is True
    shown = subprocess.run(
        runner_argv("events", "--last", "5"), env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    mine = [line for line in lines if line["event"]["id"] == printed["id"]]
    assert len(mine) == 1
    assert mine[0]["event"]["data"] == {"approved": True}
    assert mine[0]["event"]["subject"] == "T-1"
    bad = subprocess.run(
        runner_argv("emit", "--type", "t", "--source", "/cli", "--data", "{not json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "--data" in bad.stderr
    unconfigured = subprocess.run(
        runner_argv("emit", "--type", "t", "--source", "/cli"),
        env=child_env({"NATS_URL": ""}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unconfigured.returncode == 2 and "NATS_URL" in unconfigured.stderr


async def test_kill_9_of_the_router_while_dsl_listens_wait(
    tmp_path: pathlib.Path,
    embedded_nats: nats_server.NatsServer,
    temporal_server: temporal_dev_server.DevServer,
    temporal_client: Client,
    task_queue: str,
    broker: broker_module.Broker,
    dsl_worker: object,
) -> None:
    """The same outage with the runner's own DslWorkflow: each `listen` gets its event once
    (the inbox drops a signal a redelivery repeats), and every workflow finishes."""
    run = uuid.uuid4().hex[:8]
    types = [f"test.dsl-kill.{run}.{i}" for i in range(DSL_WORKFLOWS)]
    handles = [
        await start(
            temporal_client,
            task_queue,
            scenarios.inline(
                f"do:\n  - wait:\n      listen: {{to: {{one: {{with: {{type: {t}}}}}}}}}\n"
            ),
        )
        for t in types
    ]
    for handle in handles:
        await registered(handle)
    router = router_process(tmp_path, embedded_nats, temporal_server.address)
    router.start()
    try:
        await wait_for_log(router, "router started")
        events = [cloud_event(t, {"n": n}) for n, t in enumerate(types)]
        half = DSL_WORKFLOWS // 2
        await publish_all(broker, events[:half])
        router.kill()  # Mid-delivery: some of the first half are routed, some are not.
        await publish_all(broker, events[half:])  # The outage: nobody routes these yet.
        router.start()
        await wait_for_log(router, "router started")
        outputs = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 90)
    finally:
        router.stop()
    assert outputs == [[{"n": n}] for n in range(DSL_WORKFLOWS)]
    for handle, event in zip(handles, events, strict=True):
        # What reached the workflow: its one event, maybe signalled twice (a lost ack), taken
        # once.
        assert set(await signalled_event_ids(handle)) == {event["id"]}
