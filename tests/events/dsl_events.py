"""Helpers of the end-to-end event tests: the specification's examples as DslWorkflows, events to
publish, and the points a test waits for (a listener registered, a router idle)."""

from __future__ import annotations

import json
import pathlib
import uuid
from typing import Any

from nats.js.errors import NoKeysError, NotFoundError
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from backend.workflow_runner.dsl import loader
from backend.workflow_runner.events import broker as broker_module
from backend.workflow_runner.events import contract, registrations
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.workflows import DslWorkflow
from tests.support.eventually import eventually

SPEC_EXAMPLES = pathlib.Path(__file__).parent.parent / "workflow_runner" / "spec_examples"


def spec_example(name: str, urls: dict[str, str] | None = None) -> dict[str, Any]:
    """The example `name`.yaml as loaded by the runner, with each outside URL of `urls` replaced
    (a local server stands in for the example's service)."""
    text = (SPEC_EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8")
    document = loader.load_text(text)
    if not urls:
        return document
    encoded = json.dumps(document)
    for outside, local in urls.items():
        assert outside in encoded, outside
        encoded = encoded.replace(outside, local)
    return dict(json.loads(encoded))


async def start(
    client: Client, task_queue: str, document: dict[str, Any], data: Any = None
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        DslWorkflow.run,
        DslRunInput(document, data),
        id=f"e2e-events-{uuid.uuid4()}",
        task_queue=task_queue,
    )


def cloud_event(event_type: str, data: Any = None, **attributes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/tests/e2e",
        "type": event_type,
        **attributes,
    }
    if data is not None:
        event["datacontenttype"] = "application/json"
        event["data"] = data
    return event


async def registrations_done(handle: WorkflowHandle[Any, Any]) -> int:
    """How many `register_listener` activities of the workflow completed: after the n-th, an
    event published is inside the n-th listener's window (its since_sequence is older)."""
    names: dict[int, str] = {}
    done = 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            names[event.event_id] = (
                event.activity_task_scheduled_event_attributes.activity_type.name
            )
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
            done += names.get(scheduled) == contract.REGISTER_LISTENER_ACTIVITY
    return done


async def registered(handle: WorkflowHandle[Any, Any], count: int = 1) -> None:
    """Waits until the workflow's `count`-th listener registration completed."""

    async def check() -> None:
        assert await registrations_done(handle) >= count, "listener not registered yet"

    await eventually(check, timeout=30)


async def router_idle(broker: broker_module.Broker, consumer: str) -> None:
    """Waits until the router's consumer has routed and acknowledged every event in the stream."""

    async def check() -> None:
        try:
            info = await broker.js.consumer_info(contract.STREAM, consumer)
        except NotFoundError:
            raise AssertionError(f"no consumer {consumer} yet") from None
        assert info.num_pending == 0 and info.num_ack_pending == 0, info

    await eventually(check, timeout=30)


async def publish_all(broker: broker_module.Broker, events: list[dict[str, Any]]) -> None:
    for event in events:
        published = await broker.publish(event)
        assert not published.duplicate


async def signalled_event_ids(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The id of each event the router signalled to the workflow, repeats included, in order."""
    ids: list[str] = []
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            continue
        attributes = event.workflow_execution_signaled_event_attributes
        if attributes.signal_name != contract.EVENT_SIGNAL:
            continue
        delivered = json.loads(attributes.input.payloads[0].data)
        ids.append(str(delivered["event"]["id"]))
    return ids


async def listener_keys(broker: broker_module.Broker) -> list[str]:
    """The keys of every listener registered in the bucket now."""
    try:
        keys = await broker.registrations.keys()
    except NoKeysError:
        return []
    return [key for key in keys if key.startswith(registrations.LISTENER_PREFIX)]
