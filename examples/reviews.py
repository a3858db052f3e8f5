"""The demo's reply review: a workflow that waits for a reviewer's event (`listen` inside `try`
with a timeout), the review published with the runner's command line (`workflow-runner emit`)
as a reviewer's tool or a webhook would, and a second run that nobody reviews (the timeout)."""

from __future__ import annotations

import asyncio
import json
import pathlib
import shlex
from collections.abc import Callable
from typing import Any

from backend.workflow_runner.dsl import loader
from backend.workflow_runner.events import broker as events_broker
from backend.workflow_runner.events import registrations
from examples import commands, console, stack, walkthrough

WORKFLOW = pathlib.Path(__file__).resolve().parent / "workflows" / "reply-review.yaml"
# The second run's ticket, which nobody reviews.
UNREVIEWED = {"ticket": "T-1043", "reply": "Hi Bo, thanks for the report. Acme Support"}

# What the example workflow (examples/workflows/reply-review.yaml) listens for.
EVENT_TYPE = "com.acme.support.reply.reviewed"
EVENT_SOURCE = "examples/demo/reviewer"
REVIEWER = "dana"
# The `workflow-runner` program, run with this interpreter (the repo's and the demo PEX's).
CLI_MODULE = "backend.workflow_runner.main"
CLI_NAME = "workflow-runner"
POLL_SECONDS = 0.1
LISTEN_TIMEOUT_SECONDS = 60.0


class ReviewError(Exception):
    """The command line did not publish the review (its error in the message)."""


def emit_args(ticket: str, verdict: str = "approved") -> list[str]:
    """`workflow-runner emit` of a reviewer's verdict on the reply to `ticket`."""
    data = {"ticket": ticket, "verdict": verdict, "reviewer": REVIEWER}
    return ["emit", "--type", EVENT_TYPE, "--source", EVENT_SOURCE, "--data", json.dumps(data)]


def shown(args: list[str], nats_url: str) -> str:
    """The command line as a user types it."""
    return shlex.join([f"NATS_URL={nats_url}", CLI_NAME, *args])


async def listening(settings: events_broker.BrokerSettings, workflow_id: str) -> None:
    """Returns once the workflow's listen has registered: an event published from then on
    reaches it (docs/events.md)."""
    prefix = registrations.listener_key(workflow_id, "").rsplit(".", 1)[0] + "."
    broker = await events_broker.connect(settings, name="demo-reviewer")
    try:
        async with asyncio.timeout(LISTEN_TIMEOUT_SECONDS):
            while True:
                try:
                    keys = await broker.registrations.keys()
                except Exception:  # nats-py raises NoKeysError on an empty bucket.
                    keys = []
                if any(key.startswith(prefix) for key in keys):
                    return
                await asyncio.sleep(POLL_SECONDS)
    finally:
        await broker.close()


async def emit_with_cli(nats_url: str, args: list[str]) -> dict[str, Any]:
    """Runs `workflow-runner emit` as a child process; returns what it printed (JSON)."""
    try:
        out = await commands.run(CLI_MODULE, args, {"NATS_URL": nats_url})
    except commands.CommandFailed as failed:
        raise ReviewError(f"{CLI_NAME} emit {failed}") from None
    answer: dict[str, Any] = json.loads(out)
    return answer


def reviewer(
    settings: events_broker.BrokerSettings, ticket: str, say: Callable[[str], None]
) -> Callable[[str], Any]:
    """The `alongside` of a run: waits for its listen, then publishes the review with the CLI."""

    async def review(workflow_id: str) -> None:
        await listening(settings, workflow_id)
        args = emit_args(ticket)
        say(f"  review: the workflow waits for a {EVENT_TYPE} event; publishing it:")
        say(f"    $ {shown(args, settings.url)}")
        published = await emit_with_cli(settings.url, args)
        say(
            f"    published event {published.get('id')} (stream sequence {published.get('sequence')})"
        )

    return review


async def run_reviews(running: stack.Stack, ticket: str, reply: str) -> bool:
    """Runs the review workflow twice: reviewed through the CLI, then not at all (timeout);
    True when both runs ended as they should."""
    document = loader.load_text(WORKFLOW.read_text(encoding="utf-8"))
    say = console.say
    ok = True
    for title, workflow_input, alongside in (
        (
            f"Reply review of {ticket}: the workflow waits for a reviewer's event",
            {"ticket": ticket, "reply": reply},
            reviewer(running.events, ticket, say),
        ),
        (
            f"Reply review of {UNREVIEWED['ticket']}: nobody reviews it (the listen times out)",
            UNREVIEWED,
            None,
        ),
    ):
        say()
        say(f"{title} ({console.shown(WORKFLOW)})")
        result = await walkthrough.run_workflow(
            running.client,
            running.task_queue,
            document,
            workflow_input,
            console.print_progress,
            alongside=alongside,
        )
        if result.error is not None:
            say(f"The workflow failed: {result.error.describe()}")
            ok = False
            continue
        say("Output: " + json.dumps(result.output, ensure_ascii=False))
    return ok
