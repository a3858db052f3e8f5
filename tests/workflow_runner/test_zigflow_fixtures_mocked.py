"""The vendored Zigflow fixtures that call public HTTP APIs, run as their upstream e2e tests run
them: the documents unchanged, their hosts answered by a local server with the routes and bodies
upstream registers (expectations.yaml `http_mock`; upstream uses an HTTPS proxy for the same).

Only the test's HTTP transport differs: requests to a mocked host go to the local server, over
plain HTTP, with the path and query unchanged; every other host is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey

from backend.common import egress
from backend.workflow_runner.dsl import loader
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow
from tests.workflow_runner.scenarios import FAKE_AGENT_ACTIVITIES
from tests.workflow_runner.test_zigflow_fixtures import (
    EXPECTATIONS,
    FIXTURES,
    _id,
    run_as_upstream,
)

pytestmark = pytest.mark.timeout(180)


def _mockable(entry: dict[str, Any]) -> bool:
    mock = entry.get("http_mock") or {}
    return bool(mock) and set(entry["outside_services"]) <= set(mock["hosts"])


MOCKED = [e for e in EXPECTATIONS if _mockable(e)]


class _Routes(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, Any]] = {}
    seen: ClassVar[list[tuple[str, str]]] = []

    def _answer(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append((self.command, path))
        route = self.routes.get(path, self.routes.get("*"))
        status, body = (
            (404, {"error": "not found"})
            if route is None
            else (
                route.get("status", 200),
                route.get("body"),
            )
        )
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:  # - the base's name
        pass


@contextlib.contextmanager
def _serving(routes: dict[str, Any]) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """A local server answering `routes` (by path; `*` for any); (its port, requests seen)."""
    seen: list[tuple[str, str]] = []
    handler = type("Routes", (_Routes,), {"routes": routes, "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


class _ToLocal(httpx.AsyncBaseTransport):
    """Sends requests for `hosts` to the local server; refuses any other host."""

    def __init__(self, hosts: set[str], port: int) -> None:
        self.hosts, self.port = hosts, port
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in self.hosts:
            raise httpx.ConnectError(f"{request.url.host} is not mocked in this test")
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("entry", MOCKED, ids=_id)
async def test_fixture_runs_against_upstreams_mock(
    entry: dict[str, Any], temporal_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (entry.get("env") or {}).items():
        monkeypatch.setenv(name, value)
    with _serving(entry["http_mock"]["routes"]) as (port, seen):
        hosts = set(entry["http_mock"]["hosts"])
        monkeypatch.setattr(egress, "guarded_transport", lambda policy: _ToLocal(hosts, port))
        await run_as_upstream(temporal_client, entry, f"zigflow-mocked-{uuid.uuid4()}")
    assert seen, "the workflow made no request to the mocked hosts"


# The golden workflows that call jsonplaceholder: upstream runs them against the real site and
# asserts nothing on their results (golden_test.go only loads them; the test-*.sh scripts print
# what to look for). Here they run unchanged against a local jsonplaceholder, with the inputs
# golden_test.go declares and the signals the scripts say they wait for; the requests each makes
# show the path its control flow took.
JSONPLACEHOLDER: dict[str, Any] = {
    "/posts/7": {"body": {"userId": 7, "id": 7, "title": "magnam facilis autem"}},
    "/posts": {"status": 201, "body": {"id": 101}},
}
GOLDEN_RUNS = [
    # (fixture, input, signals sent once it runs, requests it makes)
    ("02-switch-conditional.yaml", {}, [], [("GET", "/posts/7"), ("POST", "/posts")]),
    ("03-foreach-loop.yaml", {"items": [1, 2, 3, 4, 5]}, [], [("POST", "/posts")] * 5),
    ("04-parallel-concurrent.yaml", {}, [], [("POST", "/posts")] * 3),
    ("05-event-signal.yaml", {}, ["approval_signal"], [("POST", "/posts")]),
    ("06-sleep-delay.yaml", {}, [], [("POST", "/posts")] * 2),
    ("07-inject-transform.yaml", {"a": 10, "b": 20}, [], [("POST", "/posts")]),
    ("08-error-retry.yaml", {}, [], [("POST", "/post"), ("POST", "/posts")]),
    ("09-nested-states.yaml", {}, [], [("POST", "/posts")] * 4),
    (
        "10-complex-workflow.yaml",
        {"valid": True, "items": [1, 2, 3], "threshold": 5},
        ["approval"],
        [("POST", "/posts")] * 4,
    ),
]


@pytest.mark.parametrize(
    ("fixture", "workflow_input", "signals", "requests"),
    GOLDEN_RUNS,
    ids=[run[0] for run in GOLDEN_RUNS],
)
async def test_golden_workflow_runs_against_a_local_jsonplaceholder(
    fixture: str,
    workflow_input: Any,
    signals: list[str],
    requests: list[tuple[str, str]],
    temporal_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = loader.load_file(FIXTURES / "golden" / fixture)
    task_queue = f"golden-mocked-{uuid.uuid4()}"
    with _serving(JSONPLACEHOLDER) as (port, seen):
        hosts = {"jsonplaceholder.typicode.com"}
        monkeypatch.setattr(egress, "guarded_transport", lambda policy: _ToLocal(hosts, port))
        async with build_worker(
            temporal_client, task_queue, agent_activities=FAKE_AGENT_ACTIVITIES
        ):
            handle = await temporal_client.start_workflow(
                DslWorkflow.run,
                DslRunInput(document, workflow_input, "zigflow"),
                id=f"golden-mocked-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            for signal in signals:
                await handle.signal(signal, {"approved": True})
            await asyncio.wait_for(handle.result(), 60)
    assert sorted(seen) == sorted(requests)


async def test_the_search_attributes_example_sets_its_attributes(
    temporal_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The attributes its upstream starter registers (examples/search-attributes/main.go).
    await temporal_client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=temporal_client.namespace,
            search_attributes={
                "call": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
                "hello": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
                "waitTime": IndexedValueType.INDEXED_VALUE_TYPE_INT,
                "userId": IndexedValueType.INDEXED_VALUE_TYPE_INT,
            },
        )
    )
    document = loader.load_file(FIXTURES / "zigflow/search-attributes/workflow.yaml")
    task_queue = f"zigflow-search-{uuid.uuid4()}"
    routes = {"/users/3": {"body": {"id": 3, "name": "Clementine Bauch"}}}
    with _serving(routes) as (port, seen):
        hosts = {"jsonplaceholder.typicode.com"}
        monkeypatch.setattr(egress, "guarded_transport", lambda policy: _ToLocal(hosts, port))
        async with build_worker(
            temporal_client, task_queue, agent_activities=FAKE_AGENT_ACTIVITIES
        ):
            handle = await temporal_client.start_workflow(
                DslWorkflow.run,
                DslRunInput(document, {"userId": 3}, "zigflow"),
                id=f"zigflow-search-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            result = await asyncio.wait_for(handle.result(), 60)
    assert seen == [("GET", "/users/3")]
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(SearchAttributeKey.for_text("hello")) == "world"
    assert attributes.get(SearchAttributeKey.for_text("call")) == "getUser"  # $data.task.name
    assert attributes.get(SearchAttributeKey.for_int("userId")) == 3
    assert attributes.get(SearchAttributeKey.for_int("waitTime")) == 3  # The last wait's.
    assert result is None  # A wait task ends it; Zigflow's wait outputs nothing.
