"""The backbone on a real NATS JetStream and the real Temporal dev server: publish, route, start."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from nats.js.errors import NotFoundError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from backend.workflow_runner.events import broker as broker_module
from backend.workflow_runner.events import contract, registrations
from backend.workflow_runner.events.cloudevent import InvalidEventError
from backend.workflow_runner.workflows import WORKFLOW_NAME
from tests.events.listening import FINISH_SIGNAL, RECORD_QUERY, ListenArgs, Record
from tests.support.eventually import eventually


def event(event_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/tests/events",
        "type": event_type,
        **extra,
    }


async def test_a_repeated_publish_is_stored_once(broker: broker_module.Broker) -> None:
    first = event(f"test.dedupe.{uuid.uuid4().hex}", data={"n": 1})
    published = await broker.publish(first)
    again = await broker.publish({**first, "data": {"n": 2}})
    assert not published.duplicate
    assert again.duplicate
    assert (again.id, again.sequence) == (first["id"], published.sequence)
    assert await broker.last_sequence() == published.sequence


async def test_an_invalid_event_is_never_published(broker: broker_module.Broker) -> None:
    before = await broker.last_sequence()
    with pytest.raises(InvalidEventError) as invalid:
        await broker.publish({"specversion": "1.0", "source": "/x", "type": "t"})
    assert invalid.value.attribute == "id"
    with pytest.raises(InvalidEventError) as oversized:
        await broker.publish(event("t", data="x" * 300_000))
    assert oversized.value.attribute == "event"
    assert await broker.last_sequence() == before


async def _listening(client: Client, task_queue: str, types: list[str]) -> str:
    workflow_id = f"listener-{uuid.uuid4()}"
    await client.start_workflow(
        "EventListeningTest", ListenArgs(types), id=workflow_id, task_queue=task_queue
    )
    return workflow_id


async def _record(client: Client, workflow_id: str) -> Record:
    record: Record = await client.get_workflow_handle(workflow_id).query(
        RECORD_QUERY, result_type=Record
    )
    return record


async def _registered(client: Client, workflow_ids: list[str]) -> None:
    for workflow_id in workflow_ids:
        assert (await _record(client, workflow_id)).since_sequence >= 0


async def test_the_router_signals_each_listener_once_per_event(
    temporal_client: Client,
    task_queue: str,
    broker: broker_module.Broker,
    listening_worker: object,
    start_router: Callable[..., Any],
) -> None:
    wanted, other = f"test.route.{uuid.uuid4().hex}", f"test.other.{uuid.uuid4().hex}"
    listeners = [await _listening(temporal_client, task_queue, [wanted]) for _ in range(2)]
    everything = await _listening(temporal_client, task_queue, [wanted, other])
    await eventually(lambda: _registered(temporal_client, [*listeners, everything]))
    # Published before any router runs: the stream keeps them until one does.
    routed, unrouted = event(wanted), event(other)
    await broker.publish(routed)
    await broker.publish(unrouted)
    start_router()

    async def delivered() -> None:
        for workflow_id in listeners:
            assert (await _record(temporal_client, workflow_id)).event_ids == [routed["id"]]
        both = (await _record(temporal_client, everything)).event_ids
        assert sorted(both) == sorted([routed["id"], unrouted["id"]])

    await eventually(delivered)
    for workflow_id in [*listeners, everything]:
        handle = temporal_client.get_workflow_handle(workflow_id, result_type=Record)
        await handle.signal(FINISH_SIGNAL)
        record = await handle.result()
        assert record.signals == len(record.event_ids), "a signal came twice"


async def test_a_listener_whose_workflow_is_gone_is_unregistered(
    broker: broker_module.Broker, start_router: Callable[..., Any]
) -> None:
    event_type = f"test.gone.{uuid.uuid4().hex}"
    gone = contract.ListenerRegistration(f"gone-{uuid.uuid4()}", "listen-1", [event_type])
    await registrations.put_listener(broker.registrations, gone)
    await broker.publish(event(event_type))
    start_router()
    key = registrations.listener_key(gone.workflow_id, gone.listener_id)

    async def unregistered() -> None:
        try:
            await broker.registrations.get(key)
        except NotFoundError:  # KeyDeletedError is one.
            return
        raise AssertionError("the listener is still registered")

    await eventually(unregistered)


SET_DOCUMENT = {
    "document": {"dsl": "1.0.0", "namespace": "tests", "name": "started-by-event", "version": "1"},
    "do": [{"remember": {"set": {"got": "${ .id }"}}}],
}


async def test_a_start_registration_starts_one_workflow_per_event_even_when_redelivered(
    temporal_client: Client,
    task_queue: str,
    broker: broker_module.Broker,
    start_router: Callable[..., Any],
) -> None:
    event_type = f"test.start.{uuid.uuid4().hex}"
    schedule = contract.StartRegistration(
        schedule_id=f"on-{uuid.uuid4().hex[:8]}",
        types=[event_type],
        document=SET_DOCUMENT,
        task_queue=task_queue,
    )
    await registrations.put_start(broker.registrations, schedule)
    published = event(event_type, data={"n": 1})
    await broker.publish(published)
    workflow_id = f"{schedule.schedule_id}-{published['id']}"
    first = start_router()

    async def started() -> str:
        try:
            description = await temporal_client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            assert error.status != RPCStatusCode.NOT_FOUND, "not started yet"
            raise
        assert description.workflow_type == WORKFLOW_NAME
        return str(description.run_id)

    run_id = await eventually(started)
    await first.close()
    # A second consumer reads the whole stream again: every event is redelivered to it.
    second_consumer = f"again-{uuid.uuid4().hex[:8]}"
    start_router(consumer=second_consumer)

    async def consumed() -> None:
        try:
            info = await broker.js.consumer_info(contract.STREAM, second_consumer)
        except NotFoundError:
            raise AssertionError("the second router has not started") from None
        assert info.num_pending == 0 and info.num_ack_pending == 0

    await eventually(consumed)
    description = await temporal_client.get_workflow_handle(workflow_id).describe()
    assert description.run_id == run_id
    await registrations.delete_start(broker.registrations, schedule.schedule_id)
