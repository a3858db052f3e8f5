"""The metrics docs/observability.md names are the ones the real endpoints serve, and every metric
of ours they serve is named there.

Both processes run in-process with all four endpoints on (ours and Temporal's SDK metrics, for the
service and the runner) against the session's dev server; one answered and one failed agent call
through a DSL workflow make the families that appear only once observed (labelled ones, Temporal's
latency histograms) show up.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import uuid

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

from backend.common import temporal_dev_server
from backend.stigmer_service import app
from backend.workflow_runner import worker
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.workflows import WORKFLOW_NAME
from tests.docs import docs_text
from tests.support import documents
from tests.support.agents import ORG, create_agent
from tests.support.eventually import eventually
from tests.support.service import fast_settings

PAGE = "docs/observability.md"
AGENT = "documented"
# Which endpoint serves which names; Temporal's are on both processes' SDK endpoints.
OWNERS = {
    "stigmer_": ("service",),
    "workflow_runner_": ("runner",),
    "temporal_": ("service_temporal", "runner_temporal"),
}
OURS = ("service", "runner")


def served_names(page: str) -> set[str]:
    """Family names (`# TYPE` lines) and sample names of a Prometheus text page."""
    names = set()
    for line in page.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(line.split("{")[0].split()[0])
    return names


def families(page: str) -> set[str]:
    return {line.split()[2] for line in page.splitlines() if line.startswith("# TYPE ")}


def not_served(documented: set[str], pages: dict[str, str]) -> list[str]:
    missing: list[str] = []
    for name in sorted(documented):
        owners = next(o for prefix, o in OWNERS.items() if name.startswith(prefix))
        missing.extend(
            f"{name} (not on the {owner} endpoint)"
            for owner in owners
            if name not in served_names(pages[owner])
        )
    return missing


def not_documented(documented: set[str], pages: dict[str, str]) -> list[str]:
    named = documented | {f"{name}_total" for name in documented}
    named |= {name.removesuffix("_total") for name in documented}
    return sorted(
        f"{family} (served by the {owner} endpoint)"
        for owner in OURS
        for family in families(pages[owner])
        if family not in named
    )


async def scrape(address: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        reply = await client.get(f"http://{address}/metrics")
        reply.raise_for_status()
        return reply.text


async def run_calls(client: Client, task_queue: str) -> None:
    """One answered call, and one whose model fails (so the error counter has a series)."""
    for message, fails in (("hello", False), ("#fail=ModelError", True)):
        document = documents.one_call(AGENT, ORG, message, namespace="docs")
        run = client.execute_workflow(
            WORKFLOW_NAME,
            DslRunInput(document, {}),
            id=f"docs-metrics-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        if fails:
            with pytest.raises(WorkflowFailureError):
                await run
        else:
            await run


async def test_the_documented_metrics_are_the_served_ones(
    temporal_server: temporal_dev_server.DevServer,
    temporal_client: Client,
    tmp_path: pathlib.Path,
) -> None:
    listen = {
        name: f"127.0.0.1:{temporal_dev_server.free_port()}"
        for name in ("service", "service_temporal", "runner", "runner_temporal")
    }
    settings = fast_settings(
        tmp_path,
        temporal_address=temporal_server.address,
        metrics_listen=listen["service"],
        temporal_metrics_listen=listen["service_temporal"],
    )
    runner_queue = f"docs-metrics-{uuid.uuid4()}"
    stop = asyncio.Event()
    async with app.running(settings) as service:
        runner = asyncio.create_task(
            worker.run_worker(
                temporal_server.address,
                "default",
                runner_queue,
                10,
                service.address,
                stop=stop,
                metrics_listen=listen["runner"],
                temporal_metrics_listen=listen["runner_temporal"],
            )
        )
        try:
            await create_agent(service.address, AGENT)
            await run_calls(temporal_client, runner_queue)
            documented = docs_text.metric_names((docs_text.REPO / PAGE).read_text(encoding="utf-8"))
            assert {n for n in documented if n.startswith("temporal_")}, "no Temporal metric named"

            async def scrape_all() -> dict[str, str]:
                return {name: await scrape(address) for name, address in listen.items()}

            async def every_documented_name_served() -> None:
                assert not_served(documented, await scrape_all()) == []

            # Temporal exports its metrics a little after the work; then one last look, whose
            # message names what is missing.
            with contextlib.suppress(AssertionError):
                await eventually(every_documented_name_served, timeout=20)
            pages = await scrape_all()
            missing = not_served(documented, pages)
            assert missing == [], f"named in {PAGE} but not served:\n" + "\n".join(missing)
            unnamed = not_documented(documented, pages)
            assert unnamed == [], f"served but not named in {PAGE}:\n" + "\n".join(unnamed)
        finally:
            stop.set()
            await asyncio.wait_for(runner, 30)


def test_self_test_a_renamed_or_new_metric_fails() -> None:
    pages = {
        "service": "# TYPE stigmer_callbacks_total counter\nstigmer_callbacks_total 1.0\n"
        "# TYPE stigmer_new_thing gauge\nstigmer_new_thing 0.0\n",
        "runner": "",
        "service_temporal": "# TYPE temporal_x_latency histogram\ntemporal_x_latency_bucket 1\n",
        "runner_temporal": "# TYPE temporal_x_latency_seconds histogram\n",
    }
    documented = {"stigmer_callbacks_total", "temporal_x_latency_seconds"}
    assert not_served(documented, pages) == [
        "temporal_x_latency_seconds (not on the service_temporal endpoint)"
    ]
    assert not_documented(documented, pages) == [
        "stigmer_new_thing (served by the service endpoint)"
    ]
