"""The Zigflow dialect on the real dev server: `$data`, `$env`, functions and Temporal messages.

The vendored fixtures (zigflow_fixtures/) run in test_zigflow_fixtures.py; these tests pin the
dialect's semantics one by one, with small documents of our own.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import SearchAttributeKey

from backend.workflow_runner.dsl import loader
from backend.workflow_runner.worker import build_worker
from tests.workflow_runner import zigflow_documents
from tests.workflow_runner.scenarios import FAKE_AGENT_ACTIVITIES, http_server

pytestmark = pytest.mark.timeout(60)


async def test_data_accumulates_set_keys_task_results_and_the_input(
    temporal_client: Client, task_queue: str
) -> None:
    document = zigflow_documents.document(
        """
do:
  - first:
      set:
        a: ${ $input.x + 1 }
        id: ${ uuid }
        other: ${ uuid }
  - second:
      set:
        b: ${ $data.a * 10 }
        fromInput: ${ $data.x }
        typeName: ${ $data.workflow.workflow_type_name }
        taskName: ${ $data.task.name }
        stamp: ${ timestamp_iso8601 }
  - loop:
      for:
        each: item
        in: ${ [1, 2, 3] }
      do:
        - double:
            set:
              value: ${ $data.item * 2 }
  - last:
      output:
        as: ${ $data }
      set:
        done: true
"""
    )
    data, _ = await zigflow_documents.run(temporal_client, task_queue, document, {"x": 4})
    assert data["x"] == 4 and data["a"] == 5 and data["b"] == 50
    assert data["first"]["a"] == 5 and data["second"]["b"] == 50
    assert re.fullmatch(r"[0-9a-f-]{36}", data["id"]) and data["id"] != data["other"]
    assert data["fromInput"] == 4 and data["typeName"] == "probe" and data["taskName"] == "second"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["stamp"])
    assert data["loop"] == [{"value": 2}, {"value": 4}, {"value": 6}]  # every iteration
    assert data["done"] is True


async def test_signal_query_and_update_listeners(temporal_client: Client, task_queue: str) -> None:
    document = zigflow_documents.document(
        """
do:
  - state:
      listen:
        to:
          one:
            with:
              id: get_state
              type: query
              data:
                status: ${ $data.status }
  - start:
      set:
        status: waiting
  - approve:
      metadata:
        timeout: 20s
      listen:
        to:
          one:
            with:
              id: approve
              type: signal
              acceptIf: ${ $data.approve.ok }
  - vitals:
      metadata:
        timeout: 20s
      listen:
        to:
          all:
            - with:
                id: temperature
                type: update
                acceptIf: ${ $data.temperature > 38 }
                data:
                  seen: ${ $data.temperature }
  - finish:
      set:
        status: done
        approver: ${ $data.approve.by }
        temperature: ${ $data.temperature }
"""
    )
    async with build_worker(temporal_client, task_queue, agent_activities=FAKE_AGENT_ACTIVITIES):
        handle = await zigflow_documents.start(temporal_client, task_queue, document)
        await handle.signal("approve", {"ok": False, "by": "mallory"})  # Not accepted.
        for _ in range(100):
            try:
                if await handle.query("get_state") == {"status": "waiting"}:
                    break
            except Exception:  # - the query listener is not registered yet
                pass
            await asyncio.sleep(0.1)
        assert await handle.query("get_state") == {"status": "waiting"}
        await handle.signal("approve", {"ok": True, "by": "ada"})
        for _ in range(100):
            try:
                reply = await handle.execute_update("temperature", 37)
                break
            except WorkflowUpdateFailedError:
                await asyncio.sleep(0.1)
        assert reply == {"seen": 37}
        assert await handle.execute_update("temperature", 39.5) == {"seen": 39.5}
        result = await asyncio.wait_for(handle.result(), 30)
        assert await handle.query("get_state") == {"status": "done"}  # Still answered.
    assert result == {"status": "done", "approver": "ada", "temperature": 39.5}


async def test_a_listen_timeout_fails_the_run(temporal_client: Client, task_queue: str) -> None:
    document = zigflow_documents.document(
        """
do:
  - approve:
      metadata:
        timeout: 1s
      listen:
        to:
          one:
            with:
              id: approve
              type: signal
"""
    )
    failure = await zigflow_documents.failure(temporal_client, task_queue, document)
    assert "no message after 1 s" in failure


async def test_activity_options_of_the_document_and_the_task_govern_an_http_call(
    temporal_client: Client, task_queue: str
) -> None:
    with http_server() as server:
        document = loader.load_text(
            f"""
document:
  dsl: 1.0.0
  taskQueue: zigflow
  workflowType: options
  version: 0.0.1
  metadata:
    activityOptions:
      startToCloseTimeout:
          seconds: 20
      retryPolicy:
        maximumAttempts: 5
        initialInterval:
          milliseconds: 100
        backoffCoefficient: 1
do:
  - flaky:
      metadata:
        activityOptions:
          retryPolicy:
            maximumAttempts: 2
          priority:
            priorityKey: 2
            fairnessKey: tenant-a
            fairnessWeight: 1.5
      call: http
      with:
        method: get
        endpoint: {server.url}/unavailable
"""
        )
        async with build_worker(
            temporal_client, task_queue, agent_activities=FAKE_AGENT_ACTIVITIES
        ):
            handle = await zigflow_documents.start(temporal_client, task_queue, document)
            with pytest.raises(WorkflowFailureError):
                await asyncio.wait_for(handle.result(), 30)
        assert server.hits["/unavailable"] == 2  # The task's maximumAttempts, not the document's.
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "call_http"
    ]
    assert len(scheduled) == 1
    attributes = scheduled[0]
    assert attributes.start_to_close_timeout.seconds == 20
    assert attributes.retry_policy.maximum_attempts == 2
    assert attributes.retry_policy.initial_interval.ToMilliseconds() == 100
    assert attributes.priority.priority_key == 2
    assert attributes.priority.fairness_key == "tenant-a"


async def test_search_attributes_are_upserted_with_their_types(
    temporal_client: Client, task_queue: str
) -> None:
    await temporal_client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=temporal_client.namespace,
            search_attributes={
                "zigflowStep": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
                "zigflowCount": IndexedValueType.INDEXED_VALUE_TYPE_INT,
            },
        )
    )
    document = zigflow_documents.document(
        """
do:
  - first:
      metadata:
        searchAttributes:
          zigflowStep:
            type: keyword
            value: ${ $data.task.name }
          zigflowCount:
            type: int
            value: 5
      set:
        ok: true
  - second:
      metadata:
        searchAttributes:
          zigflowCount:
            type: int
            value: ${ $data.workflow.attempt + 6 }
      set:
        ok: true
"""
    )
    _, handle = await zigflow_documents.run(temporal_client, task_queue, document)
    described = await handle.describe()
    attributes = described.typed_search_attributes
    assert attributes.get(SearchAttributeKey.for_keyword("zigflowStep")) == "first"
    assert attributes.get(SearchAttributeKey.for_int("zigflowCount")) == 7


async def test_an_invalid_search_attribute_fails_the_task_with_its_name(
    temporal_client: Client, task_queue: str
) -> None:
    document = zigflow_documents.document(
        """
do:
  - first:
      metadata:
        searchAttributes:
          zigflowCount:
            type: int
            value: many
      set:
        ok: true
"""
    )
    failure = await zigflow_documents.failure(temporal_client, task_queue, document)
    assert "zigflowCount: 'many' is not a number" in failure


async def test_a_run_past_can_max_history_length_continues_as_new_with_its_state(
    temporal_client: Client, task_queue: str
) -> None:
    document = loader.load_text(
        """
document:
  dsl: 1.0.0
  taskQueue: zigflow
  workflowType: long
  version: 0.0.1
  metadata:
    canMaxHistoryLength: 10
do:
  - state:
      listen:
        to:
          one:
            with:
              id: state
              type: query
              data:
                step: ${ $data.step }
  - one:
      export:
        as: '${ {first: .step} }'
      set:
        step: 1
  - pause1:
      wait:
        milliseconds: 10
  - pause2:
      wait:
        milliseconds: 10
  - two:
      set:
        step: 2
  - three:
      set:
        step: 3
        first: ${ $context.first }
        previous: ${ $output.step }
        input: ${ $input.n }
"""
    )
    async with build_worker(temporal_client, task_queue, agent_activities=FAKE_AGENT_ACTIVITIES):
        handle = await zigflow_documents.start(temporal_client, task_queue, document, {"n": 7})
        result = await asyncio.wait_for(handle.result(), 30)
        assert await handle.query("state") == {"step": 3}  # Registered again.
    assert result == {"step": 3, "first": 1, "previous": 2, "input": 7}
    history = await temporal_client.get_workflow_handle(
        handle.id, run_id=handle.first_execution_run_id
    ).fetch_history()
    assert any(
        e.HasField("workflow_execution_continued_as_new_event_attributes") for e in history.events
    )
