"""An in-process Stigmer service (gRPC on a loopback port + execution worker) per test."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.client import Client

from backend.stigmer_service import app, logs
from tests.stigmer_service import caller
from tests.support import tenants
from tests.support.service import Stubs, fast_settings, open_stubs, serving


@pytest.fixture(scope="session", autouse=True)
def _service_logs() -> None:
    """Service logs go to the real stderr (as in `serve`), never into captured CLI stdout."""
    logs.configure()


@pytest_asyncio.fixture
async def stigmer(tmp_path: pathlib.Path, temporal_client: Client) -> AsyncIterator[Stubs]:
    """The service with its worker, against the session's Temporal dev server."""
    async with app.running(fast_settings(tmp_path), client=temporal_client) as service:
        stubs = await open_stubs(service)
        try:
            yield stubs
        finally:
            await stubs.channel.close()


@pytest_asyncio.fixture
async def caller_queue(temporal_client: Client) -> AsyncIterator[str]:
    """The task queue of a fake caller's worker (tests/stigmer_service/caller.py)."""
    async with caller.running(temporal_client) as queue:
        yield queue


@pytest_asyncio.fixture
async def scoped(tmp_path: pathlib.Path, temporal_client: Client) -> AsyncIterator[Stubs]:
    """A service that knows the credentials of tests/support/tenants.py (two orgs, three roles)."""
    credentials = tenants.credentials_file(tmp_path / "credentials.yaml")
    settings = fast_settings(tmp_path, credentials_file=str(credentials))
    async with serving(settings, temporal_client) as stubs:
        yield stubs
