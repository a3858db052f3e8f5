"""The event tooling as the processes an operator runs, end to end: `workflow-runner ingress`
takes a structured and a binary-mode CloudEvent that a waiting DSL listen then receives, and
`workflow-runner events --follow` shows a newly published event and exits 0 on SIGINT."""

from __future__ import annotations

import asyncio
import json
import pathlib
import signal
import socket
import sys
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from backend.common import nats_server
from backend.workflow_runner.events import broker as broker_module
from tests.events.dsl_events import cloud_event, publish_all, registered, router_idle, start
from tests.support.eventually import eventually
from tests.support.processes import Process, child_env
from tests.workflow_runner import scenarios

pytestmark = pytest.mark.timeout(90)

TOKEN = "operator-token-of-the-ingress-e2e-test"


def runner(*args: str) -> list[str]:
    return [sys.executable, "-m", "backend.workflow_runner.main", *args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.usefixtures("dsl_worker")
async def test_the_ingress_process_feeds_a_waiting_listen(
    tmp_path: pathlib.Path,
    embedded_nats: nats_server.NatsServer,
    temporal_client: Client,
    task_queue: str,
    broker: broker_module.Broker,
    start_router: Callable[..., Any],
) -> None:
    consumer = f"e2e-{uuid.uuid4().hex[:8]}"
    start_router(consumer=consumer)
    await router_idle(broker, consumer)
    approved, commented = (f"test.hook.{uuid.uuid4().hex}" for _ in range(2))
    document = scenarios.inline(
        f"""
do:
  - review:
      listen:
        to:
          all:
            - with: {{type: {approved}}}
            - with: {{type: {commented}}}
        read: envelope
"""
    )
    handle = await start(temporal_client, task_queue, document)
    port = free_port()
    env = child_env({"NATS_URL": embedded_nats.url, "STIGMER_API_TOKEN": TOKEN})
    ingress = Process(
        "ingress",
        runner("ingress", "--listen", f"127.0.0.1:{port}"),
        env,
        tmp_path / "ingress.log",
    )
    ingress.start()
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {TOKEN}"}
        ) as http:

            async def serving() -> None:
                try:
                    answer = await http.post("/events", content=b"{}")
                except httpx.TransportError as error:
                    raise AssertionError(f"ingress not up: {error}") from None
                assert answer.status_code == 400, ingress.log_tail()

            await eventually(serving, timeout=30)
            await registered(handle)
            structured = cloud_event(approved, {"approved": True}, reviewer="ann")
            answer = await http.post(
                "/events",
                content=json.dumps(structured),
                headers={"content-type": "application/cloudevents+json"},
            )
            assert answer.status_code == 202, answer.text
            binary_id = str(uuid.uuid4())
            answer = await http.post(
                "/events",
                content=b'{"comment": "looks good"}',
                headers={
                    "ce-specversion": "1.0",
                    "ce-id": binary_id,
                    "ce-source": "/webhooks/review",
                    "ce-type": commented,
                    "content-type": "application/json",
                },
            )
            assert answer.status_code == 202, answer.text
        output = await asyncio.wait_for(handle.result(), 30)
    finally:
        ingress.stop()
    assert [(e["id"], e["type"], e["data"]) for e in output] == [
        (structured["id"], approved, {"approved": True}),
        (binary_id, commented, {"comment": "looks good"}),
    ]
    assert output[0]["reviewer"] == "ann" and output[1]["source"] == "/webhooks/review"
    assert TOKEN not in ingress.log_text()


async def test_events_follow_shows_a_new_event_and_exits_on_sigint(
    tmp_path: pathlib.Path,
    embedded_nats: nats_server.NatsServer,
    broker: broker_module.Broker,
) -> None:
    follow = Process(
        "events",
        runner("events", "--follow", "--last", "1"),
        child_env({"NATS_URL": embedded_nats.url}),
        tmp_path / "events.log",
    )
    follow.start()
    try:
        first = cloud_event(f"test.follow.{uuid.uuid4().hex}", {"n": 1})
        await publish_all(broker, [first])

        async def shown() -> None:
            assert first["id"] in follow.log_text(), follow.log_tail()

        # Printed either as the latest event or as a new one; the next is certainly new.
        await eventually(shown, timeout=30)
        new = cloud_event(f"test.follow.{uuid.uuid4().hex}", {"n": 2})
        await publish_all(broker, [new])

        async def followed() -> None:
            lines = [json.loads(line) for line in follow.log_text().splitlines() if line]
            shown = {line["event"]["id"]: line["event"] for line in lines}
            assert new["id"] in shown, follow.log_tail()
            assert shown[new["id"]]["data"] == {"n": 2}

        await eventually(followed, timeout=30)
        assert follow.popen is not None
        follow.popen.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(follow.popen.wait, 15)
    finally:
        follow.stop()
    assert code == 0, follow.log_tail()  # As docs/events.md says: 0 on SIGINT or SIGTERM.
