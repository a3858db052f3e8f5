"""Records the histories that test_replay.py replays: `python -m tests.workflow_runner.histories`.

Re-run it (and commit the JSON files) only when a change to DslWorkflow is meant to change what
it does; a change that breaks replay of the committed histories is a determinism bug otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import tempfile
from collections.abc import Callable
from typing import Any

from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy

from backend.common import temporal_dev_server
from backend.workflow_runner.models import DslRunInput
from backend.workflow_runner.worker import build_worker
from backend.workflow_runner.workflows import DslWorkflow
from tests.workflow_runner import scenarios


@dataclasses.dataclass
class Recording:
    name: str
    document: Callable[[str], dict[str, Any]]  # Given the local HTTP server's URL.
    input: Callable[[str], Any]
    fails: bool = False


RECORDINGS = [
    Recording(
        "orders_set_for_switch_wait",
        lambda _: scenarios.example("orders.yaml"),
        lambda _: {"customer": "ada", "lines": [{"item": "book", "price": 30, "quantity": 1}]},
    ),
    Recording(
        "agents_switch_try_catch",
        lambda _: scenarios.example("agents.yaml"),
        lambda _: {"ticket": "the site is down"},
    ),
    Recording(
        "agents_routine",
        lambda _: scenarios.example("agents.yaml"),
        lambda _: {"ticket": "change my email"},
    ),
    Recording("fork_compete_retry", lambda _: scenarios.FORK_AND_RETRY, lambda _: {}),
    Recording(
        "http_json",
        lambda url: scenarios.example("weather.yaml"),
        lambda url: {"baseUrl": url, "city": "oslo"},
    ),
    Recording(
        "http_503_then_200", lambda url: scenarios.http_document(url, "/flaky"), lambda _: {"n": 1}
    ),
    Recording(
        "http_404_fails",
        lambda url: scenarios.http_document(url, "/missing"),
        lambda _: {"n": 1},
        fails=True,
    ),
]


async def record(client: Client, output: pathlib.Path) -> list[pathlib.Path]:
    """Runs every recording on `client` and writes `<name>.json` histories into `output`."""
    written = []
    task_queue = "record-histories"
    async with build_worker(client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES):
        for recording in RECORDINGS:
            with scenarios.http_server() as server:
                handle = await client.start_workflow(
                    DslWorkflow.run,
                    DslRunInput(recording.document(server.url), recording.input(server.url)),
                    id=f"history-{recording.name}",
                    task_queue=task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
                )
                try:
                    await asyncio.wait_for(handle.result(), 60)
                    assert not recording.fails, recording.name
                except WorkflowFailureError:
                    assert recording.fails, recording.name
            history = await handle.fetch_history()
            path = output / f"{recording.name}.json"
            path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
            written.append(path)
    return written


async def main() -> None:
    with tempfile.TemporaryDirectory() as logs:
        server = temporal_dev_server.launch(log_path=pathlib.Path(logs) / "temporal.log")
        try:
            await temporal_dev_server.wait_ready(server)
            client = await Client.connect(server.address)
            for path in await record(client, scenarios.HISTORIES):
                print(path)
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
