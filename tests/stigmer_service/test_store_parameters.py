"""The service's engines never print bound parameters (request data): not when statement
logging is on, not in the text of a database error, on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import logging
import pathlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.stigmer_service.store import db
from backend.stigmer_service.store.tables import agents
from tests.support import postgres

SECRET = "bound-parameter-8c1f4e"


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def engine(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[AsyncEngine]:
    """A migrated database of either kind (PostgreSQL: a fresh database of its own)."""
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        else:
            url = await stack.enter_async_context(postgres.fresh_database("stigmer_params"))
        engine = db.create_engine(url)
        try:
            await db.migrate(engine)
            yield engine
        finally:
            await engine.dispose()


async def test_statement_logging_hides_bound_parameters(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    engine.echo = True  # What an operator debugging the database would turn on.
    try:
        with caplog.at_level(logging.INFO, logger="sqlalchemy.engine"):
            async with engine.connect() as conn:
                await conn.execute(sa.select(agents.c.id).where(agents.c.name == SECRET))
    finally:
        engine.echo = False
    assert "agents" in caplog.text  # The statement was logged...
    assert SECRET not in caplog.text  # ...without its parameters.


async def test_database_errors_do_not_quote_bound_parameters(engine: AsyncEngine) -> None:
    # A NOT NULL violation: the error names the statement; its parameters include the secret.
    with pytest.raises(DBAPIError) as raised:
        async with engine.begin() as conn:
            await conn.execute(agents.insert().values(id="agt-1", org=SECRET, slug=None))
    assert "agents" in str(raised.value)
    assert SECRET not in str(raised.value)
