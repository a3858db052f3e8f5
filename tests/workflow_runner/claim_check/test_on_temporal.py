"""Claim check on the real dev server: a DslWorkflow fetches a ~300 KB JSON body and counts it;
its history holds references only, the store holds the bodies."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import pathlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus

from backend.common.temporal_dev_server import DevServer
from backend.workflow_runner.claim_check import config
from backend.workflow_runner.claim_check.codec import ClaimCheckRef, is_reference
from backend.workflow_runner.claim_check.stores import FileStore
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow
from tests.workflow_runner import scenarios

pytestmark = pytest.mark.timeout(90)

# jsonplaceholder's /photos, ~300 KB as JSON (the golden test's fetchPhotos).
PHOTOS = [
    {"albumId": i // 50, "id": i, "title": f"photo {i} " + "t" * 26, "url": f"https://x/{i}"}
    for i in range(3000)
]


@contextlib.contextmanager
def photo_server() -> Iterator[str]:
    body = json.dumps(PHOTOS).encode()
    assert 250_000 < len(body) < 350_000

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def payloads_of(message: Message) -> Iterator[Payload]:
    """Every Payload anywhere in `message` (inputs, results, headers, failure details...)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = value.values()
        elif isinstance(value, Message):
            values = [value]
        else:
            values = value
        for item in values:
            if isinstance(item, Message):
                yield from payloads_of(item)


def document(url: str, output: str) -> dict[str, Any]:
    return scenarios.inline(
        f"""
do:
  - fetchPhotos:
      call: http
      with:
        method: get
        endpoint: {{uri: "{url}/photos"}}
      output: {{as: '${{ {{fetchPhotos: .}} }}'}}
  - count:
      set: {output}
"""
    )


async def run(client: Client, task_queue: str, doc: dict[str, Any], workflow_input: Any) -> Any:
    async with build_worker(client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES):
        handle = await client.start_workflow(
            DslWorkflow.run,
            DslRunInput(doc, workflow_input),
            id=f"wf-claim-check-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        result = await asyncio.wait_for(handle.result(), 60)
        return result, await handle.fetch_history()


async def test_large_bodies_cross_steps_as_references_and_history_stays_small(
    temporal_server: DevServer, task_queue: str, tmp_path: pathlib.Path
) -> None:
    settings = config.ClaimCheckSettings(store=tmp_path.as_uri())
    client = await Client.connect(
        temporal_server.address, data_converter=config.data_converter(settings)
    )
    big_input = {"tags": [f"tag-{i}" for i in range(10_000)]}  # ~120 KB: the start is offloaded too
    with photo_server() as url:
        output = (
            "{photosCount: '${ .fetchPhotos | length }', firstTitle: '${ .fetchPhotos[0].title }'}"
        )
        result, history = await run(client, task_queue, document(url, output), big_input)
    assert result == {"photosCount": 3000, "firstTitle": PHOTOS[0]["title"]}

    found = [p for event in history.events for p in payloads_of(event)]
    assert found, "the history's payloads were found"
    assert max(p.ByteSize() for p in found) <= settings.threshold_bytes
    refs = [ClaimCheckRef.from_payload(p) for p in found if is_reference(p)]
    # At least the workflow's input and the HTTP activity's result.
    assert len(refs) >= 2
    store = FileStore(tmp_path)
    restored = [Payload.FromString(await store.get(ref.key)) for ref in refs]
    assert any(str(PHOTOS[-1]["title"]).encode() in p.data for p in restored)
    assert any(b"tag-9999" in p.data for p in restored)


async def test_a_large_result_is_restored_for_a_client_with_the_codec(
    temporal_server: DevServer, task_queue: str, tmp_path: pathlib.Path
) -> None:
    settings = config.ClaimCheckSettings(store=tmp_path.as_uri())
    client = await Client.connect(
        temporal_server.address, data_converter=config.data_converter(settings)
    )
    with photo_server() as url:
        result, history = await run(
            client, task_queue, document(url, "{photos: '${ .fetchPhotos }'}"), {}
        )
    assert result == {"photos": PHOTOS}
    completed = history.events[-1].workflow_execution_completed_event_attributes.result
    assert [is_reference(p) for p in completed.payloads] == [True]


async def test_a_missing_blob_makes_the_run_wait_until_it_is_back(
    temporal_server: DevServer, task_queue: str, tmp_path: pathlib.Path
) -> None:
    settings = config.ClaimCheckSettings(store=tmp_path.as_uri())
    client = await Client.connect(
        temporal_server.address, data_converter=config.data_converter(settings)
    )
    big_input = {"tags": [f"tag-{i}" for i in range(10_000)]}
    doc = scenarios.inline("do:\n  - count: {set: {n: '${ .tags | length }'}}")
    handle = await client.start_workflow(
        DslWorkflow.run,
        DslRunInput(doc, big_input),
        id=f"wf-claim-check-{uuid.uuid4()}",
        task_queue=task_queue,
    )
    blobs = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(blobs) == 1
    blob = blobs[0]
    data = blob.read_bytes()
    blob.unlink()  # Lost, or a worker pointed at another store.
    async with build_worker(client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES):
        failed = None
        for _ in range(100):
            history = await handle.fetch_history()
            failed = next(
                (e for e in history.events if e.HasField("workflow_task_failed_event_attributes")),
                None,
            )
            if failed is not None:
                break
            await asyncio.sleep(0.1)
        assert failed is not None, "the workflow task failed"
        message = failed.workflow_task_failed_event_attributes.failure.message
        assert f"claim check blob {blob.name} is not in the store" in message
        assert "tag-" not in message
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        blob.write_bytes(data)  # Back: the retried task reads it and the run ends.
        assert await asyncio.wait_for(handle.result(), 60) == {"n": 10_000}
