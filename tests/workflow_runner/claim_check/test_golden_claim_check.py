"""The original system's claim-check golden workflows (11 and 12), unchanged, on the dev server:
jsonplaceholder answered by a local server with bodies of the sizes the files name (5,000 photos,
~500 KB; 500 comments, ~75 KB+), the runner's claim check on. Every large body crosses the
history as a reference; the store holds it."""

from __future__ import annotations

import asyncio
import json
import pathlib
import uuid
from typing import Any

import pytest
from temporalio.client import Client

from backend.common import egress
from backend.common.temporal_dev_server import DevServer
from backend.workflow_runner.claim_check import config
from backend.workflow_runner.claim_check.codec import ClaimCheckRef, is_reference
from backend.workflow_runner.dsl import loader
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow
from tests.workflow_runner import scenarios
from tests.workflow_runner.claim_check.test_on_temporal import payloads_of
from tests.workflow_runner.test_zigflow_fixtures import FIXTURES
from tests.workflow_runner.test_zigflow_fixtures_mocked import _serving, _ToLocal

pytestmark = pytest.mark.timeout(120)

PHOTOS = [
    {
        "albumId": i // 50 + 1,
        "id": i + 1,
        "title": f"photo {i} accusamus beatae ad facilis cum similique qui sunt",
        "url": f"https://via.placeholder.com/600/{i:06x}",
        "thumbnailUrl": f"https://via.placeholder.com/150/{i:06x}",
    }
    for i in range(5000)
]
COMMENTS = [
    {
        "postId": i // 5 + 1,
        "id": i + 1,
        "name": f"comment {i} id labore ex et quam laborum",
        "email": f"person{i}@example.org",
        "body": "laudantium enim quasi est quidem magnam voluptate ipsam eos " * 2,
    }
    for i in range(500)
]
ROUTES: dict[str, Any] = {
    "/photos": {"body": PHOTOS},
    "/comments": {"body": COMMENTS},
    "/posts": {"status": 201, "body": {"id": 101}},
}


@pytest.mark.parametrize(
    "fixture", ["11-claimcheck-large-payload.yaml", "12-claimcheck-between-steps.yaml"]
)
async def test_the_golden_claim_check_workflows_keep_large_bodies_out_of_history(
    fixture: str,
    temporal_server: DevServer,
    task_queue: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert len(json.dumps(PHOTOS)) > 500_000 and len(json.dumps(COMMENTS)) > 75_000
    settings = config.ClaimCheckSettings(store=tmp_path.as_uri())
    client = await Client.connect(
        temporal_server.address, data_converter=config.data_converter(settings)
    )
    document = loader.load_file(FIXTURES / "golden" / fixture)
    with _serving(ROUTES) as (port, seen):
        monkeypatch.setattr(
            egress,
            "guarded_transport",
            lambda policy: _ToLocal({"jsonplaceholder.typicode.com"}, port),
        )
        async with build_worker(
            client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES
        ):
            handle = await client.start_workflow(
                DslWorkflow.run,
                DslRunInput(document, {}, "zigflow"),
                id=f"golden-claim-check-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            result = await asyncio.wait_for(handle.result(), 90)
            history = await handle.fetch_history()
    assert result == {"id": 101}  # The last POST's answer.
    assert ("GET", "/photos") in seen and ("GET", "/comments") in seen
    found = [p for event in history.events for p in payloads_of(event)]
    assert max(p.ByteSize() for p in found) <= settings.threshold_bytes
    references = [ClaimCheckRef.from_payload(p) for p in found if is_reference(p)]
    assert len(references) >= 2  # The photos and the comments, at least.
    assert {ref.key for ref in references} <= {p.name for p in tmp_path.rglob("*") if p.is_file()}
