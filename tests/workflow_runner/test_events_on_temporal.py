"""`emit` and `listen` in DslWorkflow on the real dev server: events arrive as the stigmer_event
signal (sent here directly, no broker), and the backbone's activities are stubs under the
contract's names."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from backend.common import sandbox
from backend.workflow_runner.events import contract
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.workflows import DslWorkflow
from tests.support.eventually import eventually
from tests.workflow_runner import scenarios

pytestmark = pytest.mark.timeout(60)


@dataclasses.dataclass
class Backbone:
    """Stub activities that record what the workflow asked of the event backbone."""

    published: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    registered: list[contract.ListenerRegistration] = dataclasses.field(default_factory=list)
    unregistered: list[str] = dataclasses.field(default_factory=list)
    publish_failures: int = 0  # The first N publish attempts fail (a retried publish).

    def activities(self) -> list[Any]:
        @activity.defn(name=contract.PUBLISH_EVENT_ACTIVITY)
        async def publish(request: contract.PublishEventInput) -> contract.PublishEventOutput:
            self.published.append(request.event)
            if len(self.published) <= self.publish_failures:
                raise RuntimeError("broker unavailable")
            return contract.PublishEventOutput(request.event["id"], len(self.published), False)

        @activity.defn(name=contract.REGISTER_LISTENER_ACTIVITY)
        async def register(
            registration: contract.ListenerRegistration,
        ) -> contract.RegisterListenerOutput:
            self.registered.append(registration)
            return contract.RegisterListenerOutput(since_sequence=0)

        @activity.defn(name=contract.UNREGISTER_LISTENER_ACTIVITY)
        async def unregister(registration: contract.ListenerRegistration) -> None:
            self.unregistered.append(registration.listener_id)

        return [publish, register, unregister]


def worker(client: Client, task_queue: str, backbone: Backbone) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[DslWorkflow],
        activities=backbone.activities(),
        workflow_runner=sandbox.workflow_runner(),
    )


async def start(
    client: Client, task_queue: str, text: str, data: Any = None
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        DslWorkflow.run,
        DslRunInput(scenarios.inline(text), data),
        id=f"events-{uuid.uuid4()}",
        task_queue=task_queue,
    )


def cloud_event(event_id: str, kind: str, data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "test", "type": kind, "data": data}


async def registered(backbone: Backbone, count: int = 1) -> contract.ListenerRegistration:
    async def check() -> contract.ListenerRegistration:
        assert len(backbone.registered) >= count
        return backbone.registered[count - 1]

    return await eventually(check)


APPROVAL = """
do:
  - ask:
      emit:
        event:
          with: {source: https://stigmer.test, type: approval.requested, data: {doc: "${ .doc }"}}
  - wait:
      listen:
        to:
          one:
            with: {type: approval.decided}
            correlate: {doc: {from: .data.doc, expect: "${ $workflow.input.doc }"}}
  - decided: {set: {decision: "${ .[0].decision }", asked: "${ $context }"}}
"""


async def test_emit_then_listen_with_events_delivered_as_signals(
    temporal_client: Client, task_queue: str
) -> None:
    backbone = Backbone(publish_failures=1)
    async with worker(temporal_client, task_queue, backbone):
        handle = await start(temporal_client, task_queue, APPROVAL, {"doc": "d-1"})
        registration = await registered(backbone)
        assert registration.workflow_id == handle.id
        assert registration.types == ["approval.decided"]
        assert registration.listener_id == "/do/1/wait#1"

        async def send(event: dict[str, Any]) -> None:
            # Sequences after the emit's (2, its retried publish): inside the listen's window.
            delivered = contract.DeliveredEvent(registration.listener_id, event, 10)
            await handle.signal(contract.EVENT_SIGNAL, delivered)

        await send(cloud_event("e1", "approval.decided", {"doc": "d-2", "decision": "no"}))
        await send(cloud_event("e2", "approval.decided", {"doc": "d-1", "decision": "yes"}))
        await send(cloud_event("e2", "approval.decided", {"doc": "d-1", "decision": "dup"}))
        assert (await handle.result())["decision"] == "yes"
    # The retried publish carried the same id and time both times.
    first, retried = backbone.published
    assert first == retried and first["type"] == "approval.requested"
    assert first["data"] == {"doc": "d-1"} and first["specversion"] == "1.0"
    assert backbone.unregistered == ["/do/1/wait#1"]


async def test_a_listen_timeout_unregisters_and_try_catches_it(
    temporal_client: Client, task_queue: str
) -> None:
    backbone = Backbone()
    async with worker(temporal_client, task_queue, backbone):
        handle = await start(
            temporal_client,
            task_queue,
            """
do:
  - guarded:
      try:
        - wait:
            timeout: {after: {seconds: 1}}
            listen: {to: {one: {with: {type: never}}}}
      catch:
        errors: {with: {type: "https://serverlessworkflow.io/spec/1.0.0/errors/timeout"}}
        do: [{late: {set: {timedOut: true}}}]
""",
        )
        assert await handle.result() == {"timedOut": True}
    assert backbone.unregistered == ["/do/0/guarded/try/0/wait#1"]


async def test_a_cancelled_listen_unregisters(temporal_client: Client, task_queue: str) -> None:
    backbone = Backbone()
    async with worker(temporal_client, task_queue, backbone):
        handle = await start(temporal_client, task_queue, "do: [{wait: {listen: {to: {any: []}}}}]")
        await registered(backbone)
        await handle.cancel()
        with pytest.raises(Exception):  # noqa: B017 (WorkflowFailureError of a cancellation)
            await handle.result()
    assert backbone.unregistered == ["/do/0/wait#1"]


async def test_listen_to_all_with_foreach_and_events_for_another_listener_dropped(
    temporal_client: Client, task_queue: str
) -> None:
    backbone = Backbone()
    async with worker(temporal_client, task_queue, backbone):
        handle = await start(
            temporal_client,
            task_queue,
            """
do:
  - both:
      listen:
        to: {all: [{with: {type: a}}, {with: {type: b}}]}
        read: envelope
      foreach:
        item: ev
        do: [{note: {set: {id: "${ $ev.id }", at: "${ $index }"}}}]
""",
        )
        registration = await registered(backbone)
        assert registration.types == ["a", "b"]
        for listener, event in [
            ("/elsewhere#1", cloud_event("x", "a", 0)),
            (registration.listener_id, cloud_event("1", "b", 1)),
            (registration.listener_id, cloud_event("2", "b", 2)),
            (registration.listener_id, cloud_event("3", "a", 3)),
        ]:
            await handle.signal(contract.EVENT_SIGNAL, contract.DeliveredEvent(listener, event, 1))
        assert await asyncio.wait_for(handle.result(), 30) == [
            {"id": "1", "at": 0},
            {"id": "3", "at": 1},
        ]
