"""Workflows run on the real dev server by the integration tests and by the history generator.

The Stigmer service is replaced by a fake `call_agent` activity (same activity name), and HTTP
endpoints by a local threaded server.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import http.server
import json
import pathlib
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from backend.workflow_runner.agent_call.models import (
    CALL_AGENT_ACTIVITY,
    CANCEL_AGENT_CALL_ACTIVITY,
    CallAgentInput,
    CancelAgentCallInput,
)
from backend.workflow_runner.models import DslRunInput, ProgressEntry
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow

WORKFLOWS = pathlib.Path(__file__).parent / "workflows"
HISTORIES = pathlib.Path(__file__).parent / "histories"
HEADER = {"dsl": "1.0.0", "namespace": "test", "name": "scenario", "version": "1"}


@activity.defn(name=CALL_AGENT_ACTIVITY)
async def fake_call_agent(call: CallAgentInput) -> dict[str, Any]:
    """Agents by slug: `classifier` sees "down" as urgent, `pager` always fails, others echo."""
    if call.agent == "pager":
        raise ApplicationError("model overloaded", type="ModelError", non_retryable=True)
    if call.agent == "classifier":
        answer = "URGENT" if "down" in call.message else "Routine"
    else:
        answer = f"{call.agent} answers: {call.message}"
    return {"output": answer, "execution_id": f"ex-{call.agent}", "agent": call.agent}


@activity.defn(name=CANCEL_AGENT_CALL_ACTIVITY)
async def fake_cancel_agent_call(request: CancelAgentCallInput) -> Any:
    return None


FAKE_AGENT_ACTIVITIES: list[Callable[..., Any]] = [fake_call_agent, fake_cancel_agent_call]


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: collections.Counter[str]

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        self.hits[self.path] += 1
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        if self.path.startswith("/weather/"):
            city = self.path.rsplit("/", 1)[1]
            self._json(200, {"city": city, "temperature": 21, "unit": "C"})
        elif self.path == "/flaky":
            if self.hits[self.path] == 1:
                self._json(503, {"error": "try again"})
            else:
                self._json(200, {"ok": True, "attempt": self.hits[self.path]})
        elif self.path.startswith("/unavailable"):
            self._json(503, {"error": "down for good"})
        elif self.path.startswith("/v2/pet/"):
            # The specification's examples call the Swagger petstore; this is its shape here.
            pet_id = self.path.removeprefix("/v2/pet/")
            if pet_id.isdigit():
                self._json(200, {"id": int(pet_id), "name": f"pet {pet_id}"})
            else:
                self._json(404, {"message": "Pet not found"})
        elif self.path.startswith("/echo"):
            echo = {"method": self.command, "path": self.path, "body": body}
            self._json(200, {**echo, "header": self.headers.get("x-test")})
        else:
            self._json(404, {"error": "no such thing"})

    def _json(self, status: int, value: Any) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclasses.dataclass
class HttpServer:
    url: str
    hits: collections.Counter[str]


@contextmanager
def http_server() -> Iterator[HttpServer]:
    hits: collections.Counter[str] = collections.Counter()
    handler = type("Handler", (_Handler,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpServer(f"http://127.0.0.1:{server.server_address[1]}", hits)
    finally:
        server.shutdown()
        server.server_close()


def example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((WORKFLOWS / name).read_text()))


def inline(text: str) -> dict[str, Any]:
    document = dict(yaml.safe_load(text))
    document.setdefault("document", HEADER)
    return document


# Covers set, switch, for, fork (all and compete), try/catch with retry, wait, raise,
# call http and call agent: replaying their histories guards determinism.
FORK_AND_RETRY = inline(
    """
do:
  - init: {set: {attempts: 0}}
  - parallel:
      fork:
        branches:
          - left: {set: {side: left}}
          - right: {do: [{nap: {wait: {milliseconds: 100}}}, {r: {set: {side: right}}}]}
  - race:
      fork:
        compete: true
        branches:
          - slow: {do: [{nap: {wait: PT30S}}, {s: {set: {winner: slow}}}]}
          - quick: {set: {winner: quick}}
  - guarded:
      try:
        - fail:
            raise:
              error: {type: "https://example.com/flaky", status: 503, detail: flaky}
      catch:
        errors: {with: {status: 503}}
        retry:
          delay: {milliseconds: 100}
          backoff: {constant: {}}
          limit: {attempt: {count: 2}}
        do:
          - recovered: {set: {recovered: "${ $error.detail }", winner: "${ $input.winner }"}}
"""
)


def http_document(
    base_url: str, path: str, output: str = "content", method: str = "post"
) -> dict[str, Any]:
    return inline(
        f"""
do:
  - call:
      call: http
      with:
        method: {method}
        endpoint: {{uri: "{base_url}{path}"}}
        headers: {{x-test: "yes"}}
        body: {{n: "${{ .n }}"}}
        output: {output}
"""
    )


async def run_workflow(
    client: Client, task_queue: str, document: dict[str, Any], workflow_input: Any = None
) -> tuple[Any, list[ProgressEntry]]:
    """Runs `document` on a worker of this process (fake agents); its result and progress."""
    async with build_worker(client, task_queue, agent_activities=FAKE_AGENT_ACTIVITIES):
        handle = await client.start_workflow(
            DslWorkflow.run,
            DslRunInput(document, workflow_input),
            id=f"wf-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        return await asyncio.wait_for(handle.result(), 40), await handle.query(DslWorkflow.progress)
