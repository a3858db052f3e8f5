"""A whole stack of real processes per test: dev server (SQLite), Stigmer service, DSL worker."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import pytest_asyncio

from tests.support import stack as processes
from tests.support.agents import ORG
from tests.support.stack import Stack

AGENT = "fault-agent"

# A secret the worker resolves for `$secrets.API_KEY`; the tests check it never leaks.
SECRET_VALUE = "sk-system-test-0b9c2f7e"
WORKER_ENV = {"STIGMER_SECRET_API_KEY": SECRET_VALUE}


@pytest_asyncio.fixture
async def stack(tmp_path: pathlib.Path) -> AsyncIterator[Stack]:
    async with processes.running(
        tmp_path,
        agent=AGENT,
        org=ORG,
        queue_prefix="system",
        service_env=processes.FAST_SERVICE_ENV,
        worker_env=WORKER_ENV,
    ) as stack:
        yield stack
