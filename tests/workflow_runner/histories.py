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

from backend.common import nats_server, temporal_dev_server
from backend.workflow_runner.events import broker as broker_module
from backend.workflow_runner.events.activities import EventActivities
from backend.workflow_runner.events.router import run_router
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
    dialect: str = "standard"


# The Zigflow dialect: $data, uuid() and timestamp() drawn from the workflow, a loop over a count,
# a fork's object output, a query listener, an HTTP call with activityOptions.
ZIGFLOW_DOCUMENT = """
document:
  dsl: 1.0.0
  taskQueue: zigflow
  workflowType: history
  version: 0.0.1
  metadata:
    activityOptions:
      retryPolicy:
        maximumAttempts: 3
do:
  - state:
      listen:
        to:
          one:
            with:
              id: state
              type: query
              data:
                id: ${ $data.id }
  - ids:
      set:
        id: ${ uuid }
        at: ${ timestamp_iso8601 }
  - loop:
      for:
        in: ${ 3 }
      do:
        - square:
            set:
              value: ${ $data.item * $data.item }
  - both:
      fork:
        branches:
          - left:
              set:
                side: left
          - right:
              wait:
                milliseconds: 10
  - weather:
      call: http
      with:
        method: get
        endpoint: ${ $input.baseUrl + "/weather/oslo" }
  - done:
      set:
        squares: ${ [$data.loop[].value] }
        city: ${ $data.weather.city }
"""


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
        "zigflow_data_loop_fork_http",
        lambda _: scenarios.inline(ZIGFLOW_DOCUMENT),
        lambda url: {"baseUrl": url},
        dialect="zigflow",
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
                    DslRunInput(
                        recording.document(server.url),
                        recording.input(server.url),
                        recording.dialect,
                    ),
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


# The event recording: a listen first (its horizon the run's start), then an emit; the
# recorder publishes the event the listen waits for once the run has started.
EVENTS_RECORDING = "events_listen_then_emit"
_HEARD = "com.example.history.heard"
EVENTS_DOCUMENT = f"""
do:
  - hear:
      listen: {{to: {{one: {{with: {{type: {_HEARD}}}}}}}}}
  - tell:
      emit: {{event: {{with: {{source: /history, type: com.example.history.told,
                              data: '${{ .[0] }}'}}}}}}
"""


async def record_events(client: Client, output: pathlib.Path, store: pathlib.Path) -> pathlib.Path:
    """Runs the event recording against an embedded NATS and a router (DslWorkflow's event
    path: register with its backlog, the stigmer_event signal, unregister, publish)."""
    server = nats_server.launch(store / "nats", log_path=store / "nats.log")
    try:
        await nats_server.wait_ready(server)
        settings = broker_module.BrokerSettings(url=server.url)
        broker = await broker_module.connect(settings, name="histories")
        stop = asyncio.Event()
        router = asyncio.ensure_future(run_router(broker, client, stop))
        task_queue = "record-event-histories"
        events = EventActivities(settings)
        try:
            async with build_worker(
                client, task_queue, agent_activities=scenarios.FAKE_AGENT_ACTIVITIES, events=events
            ):
                handle = await client.start_workflow(
                    DslWorkflow.run,
                    DslRunInput(scenarios.inline(EVENTS_DOCUMENT), {}),
                    id=f"history-{EVENTS_RECORDING}",
                    task_queue=task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
                )
                await broker.publish(
                    {
                        "specversion": "1.0",
                        "id": "history-heard-1",
                        "source": "/history",
                        "type": _HEARD,
                        "datacontenttype": "application/json",
                        "data": {"said": "hello"},
                    }
                )
                await asyncio.wait_for(handle.result(), 60)
        finally:
            stop.set()
            await asyncio.wait_for(router, 10)
            await broker.close()
            await events.close()
    finally:
        server.stop()
    history = await handle.fetch_history()
    path = output / f"{EVENTS_RECORDING}.json"
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    return path


async def main() -> None:
    with tempfile.TemporaryDirectory() as logs:
        server = temporal_dev_server.launch(log_path=pathlib.Path(logs) / "temporal.log")
        try:
            await temporal_dev_server.wait_ready(server)
            client = await Client.connect(server.address)
            for path in await record(client, scenarios.HISTORIES):
                print(path)
            print(await record_events(client, scenarios.HISTORIES, pathlib.Path(logs)))
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
