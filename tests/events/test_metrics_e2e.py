"""The router process's event metrics, scraped from its /metrics endpoint: the waiting-listeners
gauge follows the registrations (up while DSL listens wait, down when they end, with no event
needed to move it) and each signal counts as delivered."""

from __future__ import annotations

import asyncio
import pathlib
import socket
import sys
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from backend.common import nats_server, temporal_dev_server
from backend.workflow_runner.events import broker as broker_module
from tests.events.dsl_events import cloud_event, listener_keys, publish_all, registered, start
from tests.support.eventually import eventually
from tests.support.processes import Process, child_env, wait_for_log
from tests.workflow_runner import scenarios

pytestmark = pytest.mark.timeout(90)

WAITING = "workflow_runner_event_listeners_waiting"
DELIVERED = "workflow_runner_events_delivered_total"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def scrape(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://{address}/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.usefixtures("dsl_worker")
async def test_the_waiting_listeners_gauge_follows_registrations(
    tmp_path: pathlib.Path,
    embedded_nats: nats_server.NatsServer,
    temporal_server: temporal_dev_server.DevServer,
    temporal_client: Client,
    task_queue: str,
    broker: broker_module.Broker,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    env = child_env({"NATS_URL": embedded_nats.url, "TEMPORAL_ADDRESS": temporal_server.address})
    router = Process(
        "router",
        [
            sys.executable,
            "-m",
            "backend.workflow_runner.main",
            "router",
            "--ack-wait",
            "5",
            "--metrics-listen",
            address,
        ],
        env,
        tmp_path / "router.log",
    )
    router.start()
    try:
        await wait_for_log(router, "router started")

        async def gauge_matches_bucket() -> float:
            value = (await scrape(address)).get((WAITING, ()))
            assert value == len(await listener_keys(broker)), router.log_tail()
            return value

        await eventually(gauge_matches_bucket, timeout=30)
        kind = f"test.gauge.{uuid.uuid4().hex}"
        document = scenarios.inline(
            f"do: [{{wait: {{listen: {{to: {{one: {{with: {{type: {kind}}}}}}}}}}}}}]"
        )
        handles = [await start(temporal_client, task_queue, document) for _ in range(2)]
        for handle in handles:
            await registered(handle)
        waiting = await eventually(gauge_matches_bucket, timeout=30)
        assert waiting >= 2
        before = (await scrape(address)).get((DELIVERED, (("kind", "signal"),)), 0.0)
        await publish_all(broker, [cloud_event(kind, {"go": True})])
        outputs = await asyncio.gather(*(asyncio.wait_for(h.result(), 30) for h in handles))
        assert outputs == [[{"go": True}]] * 2

        async def fewer() -> None:
            metrics = await scrape(address)
            assert metrics.get((WAITING, ())) == waiting - 2
            assert metrics.get((DELIVERED, (("kind", "signal"),)), 0.0) >= before + 2

        await eventually(fewer, timeout=30)
    finally:
        router.stop()
    assert router.popen is not None and router.popen.returncode == 0, router.log_tail()
