"""The real Stigmer service, in-process on the session's dev server, for the end-to-end tests."""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.client import Client

from backend.stigmer_service import app
from tests.support import service as in_process
from tests.support.agents import ORG, create_agent

AGENT = "echoer"


@pytest_asyncio.fixture
async def service(temporal_client: Client, tmp_path: pathlib.Path) -> AsyncIterator[app.Service]:
    """The real service (gRPC server and its execution worker) in-process, on a fresh database."""
    settings = in_process.settings(
        tmp_path,
        f"stigmer-e2e-{uuid.uuid4()}",
        temporal_address="unused: the client is given",
        # Cancellation reaches the agent on the service's next heartbeat of the caller.
        caller_heartbeat_interval=0.5,
        grace_period=1.0,
    )
    async with app.running(settings, client=temporal_client) as running:
        await create_agent(running.address, AGENT, ORG, instructions="Echo.")
        yield running
