"""Issue 14's scan: a workflow that uses every DSL task type with two secrets, run by the runner's
command line through the real processes; neither secret nor any callback token, in any encoding,
shows in a workflow history, a process log, a read response, the result or the command's output."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import sys
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import yaml
from temporalio.client import Client

from backend.common import nats_server
from backend.workflow_runner.dsl import loader, model
from backend.workflow_runner.events import broker as broker_module
from backend.workflow_runner.events.router import run_router
from tests.support import leaks
from tests.support import stack as processes
from tests.support.agents import ORG
from tests.support.eventually import eventually
from tests.support.processes import child_env
from tests.support.recording_server import Received, recording_server
from tests.support.stack import Stack

pytestmark = pytest.mark.timeout(120)

AGENT = "scan-agent"
# Distinctive, and in need of percent-encoding (space, slash, plus) in a query.
API_KEY = "sk-scan S3CRET/api+1f7e"
SIGNING_KEY = "sig-SCANKEY-93c4d0a7"

# The events the document emits and waits for (a run takes only events after its start).
ANNOUNCED = "ai.stigmer.scan.announced"
HEARD = "ai.stigmer.scan.heard"
# Every task type the runner has (set, call http, call agent, switch, for, fork, try/catch with
# retry, raise, wait, do, emit, listen), with input.from, output.as, export.as and if; a secret wherever an
# expression may hold one, and its placeholder carried through data (set, for, raise's detail).
DOCUMENT = f"""
document: {{dsl: 1.0.0, namespace: security, name: secret-scan, version: 1.0.0}}
use:
  secrets: [API_KEY, SIGNING_KEY]
input:
  from: '${{ {{base: .base, ids: .ids}} }}'
do:
  - seal:
      set:
        base: ${{ .base }}
        key: ${{ $secrets.API_KEY }}
        items: '${{ [.ids[] | {{id: ., key: (if . % 2 == 0 then $secrets.SIGNING_KEY
          else $secrets.API_KEY end)}}] }}'
      export:
        as: '${{ {{base: .base, key: .key}} }}'
  - post:
      try:
        - send:
            call: http
            with:
              method: post
              endpoint: ${{ $context.base + "/flaky" }}
              headers:
                authorization: ${{ "Bearer " + $secrets.API_KEY }}
                x-signing-key: ${{ $secrets.SIGNING_KEY }}
              query:
                key: ${{ $secrets.API_KEY }}
              body:
                key: ${{ $context.key }}
                signing: ${{ $secrets.SIGNING_KEY }}
                items: ${{ .items }}
              output: response
      catch:
        errors:
          with: {{status: 500}}
        retry:
          delay: {{milliseconds: 50}}
          limit: {{attempt: {{count: 2}}}}
      output:
        as: '${{ {{status: .statusCode, echoed: .headers["x-echo-authorization"], items: $input.items}} }}'
  - check:
      switch:
        - delivered:
            when: ${{ .status == 200 }}
            then: fanOut
        - otherwise:
            then: end
  - fanOut:
      for:
        each: item
        in: ${{ .items }}
        at: index
      do:
        - deliver:
            if: ${{ $item.id > 1 }}
            call: http
            with:
              method: post
              endpoint: ${{ $context.base + "/echo" }}
              headers:
                x-item-key: ${{ $item.key }}
              body: {{id: "${{ $item.id }}", key: "${{ $item.key }}"}}
            output:
              as: '${{ $input + {{echoes: (($input.echoes // []) + [.headers["x-item-key"]])}} }}'
  - announce:
      emit:
        event:
          with:
            source: /security/scan
            type: {ANNOUNCED}
            data:
              key: ${{ $secrets.API_KEY }}
              echoes: ${{ .echoes | length }}
      output:
        as: ${{ $input }}
  - hear:
      listen:
        to:
          one:
            with: {{type: {HEARD}}}
      output:
        as: '${{ $input + {{heard: .[0].word}} }}'
  - together:
      fork:
        branches:
          - ask:
              call: agent
              with:
                agent: {AGENT}
                org: {ORG}
                message: '${{ "Sign " + (.echoes | length | tostring) + " items with "
                  + $secrets.SIGNING_KEY + " using key " + $context.key }}'
                env:
                  API_KEY: ${{ $secrets.API_KEY }}
                  SIGNING_KEY: ${{ $secrets.SIGNING_KEY }}
                config: {{model: offline/echo, timeout: PT2M}}
              output:
                as: '${{ {{answer: .output, echoes: $input.echoes}} }}'
          - pause:
              wait: {{milliseconds: 200}}
  - refuse:
      try:
        - deny:
            do:
              - reject:
                  raise:
                    error:
                      type: https://stigmer.ai/errors/refused
                      status: 403
                      title: Refused
                      detail: ${{ "key " + $secrets.API_KEY + " refused" }}
      catch:
        errors:
          with: {{status: 403}}
        as: refusal
        do:
          - report:
              call: agent
              with:
                agent: {AGENT}
                org: {ORG}
                message: '${{ "Refused: " + $refusal.detail }}'
                env:
                  API_KEY: ${{ $secrets.API_KEY }}
                config: {{model: offline/echo, timeout: PT2M}}
              output:
                as: '${{ {{first: $input[0], refusal: .output}} }}'
output:
  as: '${{ {{answers: [.first.answer, .refusal], echoes: .first.echoes}} }}'
"""


def _task_types(tasks: list[Any]) -> set[str]:
    """The task types a task list uses, nested lists included; calls by what they call."""
    found: set[str] = set()
    for entry in tasks:
        ((_name, task),) = entry.items()
        kind = model.task_type(task)
        found.add(f"call {task['call']}" if kind == "call" else str(kind))
        nested = [task.get("do"), task.get("try"), task.get("catch", {}).get("do")]
        nested.append(task.get("fork", {}).get("branches"))
        for inner in nested:
            found |= _task_types(inner or [])
    return found


def test_the_document_is_valid_and_uses_every_task_type() -> None:
    document = yaml.safe_load(DOCUMENT)
    assert loader.validate(document) == []
    used = _task_types(document["do"])
    assert {"call http", "call agent"} <= used
    assert {kind.split()[0] for kind in used} == set(model.SUPPORTED_TASK_TYPES)


@pytest_asyncio.fixture
async def stack(
    tmp_path: pathlib.Path, embedded_nats: nats_server.NatsServer
) -> AsyncIterator[Stack]:
    async with processes.running(
        tmp_path,
        agent=AGENT,
        org=ORG,
        queue_prefix="scan",
        service_env=processes.FAST_SERVICE_ENV,
        worker_env={
            "STIGMER_SECRET_API_KEY": API_KEY,
            "STIGMER_SECRET_SIGNING_KEY": SIGNING_KEY,
            "NATS_URL": embedded_nats.url,
        },
    ) as stack:
        yield stack


@pytest_asyncio.fixture
async def broker(embedded_nats: nats_server.NatsServer) -> AsyncIterator[broker_module.Broker]:
    connected = await broker_module.connect(broker_module.BrokerSettings(url=embedded_nats.url))
    yield connected
    await connected.close()


@contextlib.asynccontextmanager
async def routing(broker: broker_module.Broker, client: Client) -> AsyncIterator[None]:
    """An event router of the test's own (its own consumer) while the block runs."""
    stop = asyncio.Event()
    router = asyncio.ensure_future(
        run_router(broker, client, stop, consumer=f"scan-{uuid.uuid4().hex[:8]}")
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(router, 15)


async def _run_cli(stack: Stack, workflow_id: str, workflow_input: dict[str, Any]) -> bytes:
    """`workflow-runner run` as a user runs it; its stdout (the result) and stderr (progress)."""
    path = stack.state_dir / "secret-scan.yaml"
    path.write_text(DOCUMENT)
    command = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "backend.workflow_runner.main", "run", str(path)),
        *("--input", json.dumps(workflow_input), "--id", workflow_id),
        *("--task-queue", stack.worker_task_queue),
        env=child_env({"TEMPORAL_ADDRESS": stack.temporal.address}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(command.communicate(), 60)
    assert command.returncode == 0, stderr.decode(errors="replace")
    return stdout + b"\n" + stderr


def _assert_server_got_the_values(received: list[Received]) -> None:
    """The scan would pass on a run that sent placeholders or nothing; the server proves it did
    not: every place the document put a secret reached it resolved."""
    flaky = [r for r in received if r.path.startswith("/flaky")]
    assert len(flaky) == 2, [r.path for r in received]  # Failed once, retried by the document.
    for request in flaky:
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.headers["x-signing-key"] == SIGNING_KEY
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        assert query == {"key": [API_KEY]}
        body = json.loads(request.body)
        assert (body["key"], body["signing"]) == (API_KEY, SIGNING_KEY)
        # Placeholders that flowed through data (set, then the task input) resolve too.
        assert [item["key"] for item in body["items"]] == [API_KEY, SIGNING_KEY, API_KEY]
    echoed = [r for r in received if r.path == "/echo"]
    # `if` skipped item 1; items 2 and 3 carried their keys through the `for`.
    assert [json.loads(r.body)["id"] for r in echoed] == [2, 3]
    assert [r.headers["x-item-key"] for r in echoed] == [SIGNING_KEY, API_KEY]


async def test_no_secret_or_token_in_histories_logs_reads_or_output(
    stack: Stack, broker: broker_module.Broker
) -> None:
    client = await Client.connect(stack.temporal.address)
    workflow_id = f"secret-scan-{uuid.uuid4()}"
    start = await broker.last_sequence()
    with recording_server() as server:
        async with routing(broker, client):
            run = asyncio.ensure_future(
                _run_cli(stack, workflow_id, {"base": server.url, "ids": [1, 2, 3]})
            )

            async def has_announced() -> None:
                events, _ = await broker.replay(start, await broker.last_sequence(), [], 1 << 20)
                assert any(e["type"] == ANNOUNCED for _, e in events), "not announced yet"

            await eventually(has_announced, timeout=30, every=0.2)
            # The reply to the announcement: the listen takes what comes after the run's emit.
            heard = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/scan"}
            await broker.publish(heard | {"type": HEARD, "data": {"word": "go"}})
            cli_output = await run
    _assert_server_got_the_values(server.received)
    # The emitted event holds the secret's sealed placeholder, never its value.
    events, _ = await broker.replay(start, await broker.last_sequence(), [], 1 << 20)
    [announced] = [e for _, e in events if e["type"] == ANNOUNCED]
    assert announced["data"]["echoes"] == 2
    assert str(announced["data"]["key"]).startswith("{{secret:")

    result = await client.get_workflow_handle(workflow_id).result()
    # The echoes came back masked; the service resolved the agents' placeholders (the offline
    # model echoes the message) and masked the values in the answers.
    assert result == {
        "answers": [
            f"{AGENT}: Sign 2 items with *** using key ***",
            f"{AGENT}: Refused: key *** refused",
        ],
        "echoes": ["***", "***"],
    }, result
    assert json.loads(cli_output.split(b"\n", 1)[0]) == result

    reads = await leaks.read_responses(stack.service_address)
    assert len(reads.executions) == 2
    tokens = await leaks.service_tokens(stack, (e.metadata.id for e in reads.executions))
    assert len(tokens) == 2, "each agent call handed over its token"

    async def every_history() -> dict[str, bytes]:
        found = await leaks.histories(client)
        assert len(found) >= 1 + len(reads.executions), list(found)
        return found

    histories = await eventually(every_history, timeout=20, every=0.5)
    runner_history = histories[next(k for k in histories if workflow_id in k)]
    # The scan reads decoded payloads: the activity inputs' sealed placeholders are there.
    assert b"{{secret:" in runner_history and b":SIGNING_KEY}}" in runner_history

    blobs = histories | leaks.process_logs(stack) | reads.responses
    blobs["result"] = json.dumps(result).encode()
    blobs["workflow-runner run output"] = cli_output
    blobs["the event stream"] = json.dumps(events).encode()
    assert len(leaks.process_logs(stack)) == 3
    leaks.assert_absent(
        blobs,
        {
            "secret API_KEY": API_KEY.encode(),
            "secret SIGNING_KEY": SIGNING_KEY.encode(),
            **{f"callback token {n}": token for n, token in enumerate(tokens)},
        },
    )
