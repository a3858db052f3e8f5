"""Statements run on the database driver's own connection: the agent's end, on the callback's path.

The end of an agent's run (its answer and the COMPLETED phase) must be committed before the
callback goes out, so its transaction is part of every call's latency. Through SQLAlchemy's async
engine a statement costs about ten times what the driver itself needs (building the statement's
cache key, the greenlet and, on SQLite, aiosqlite's thread hand-offs for cursor, execute, fetch
and close: see docs/benchmarks.md). Here a SQLAlchemy statement is compiled once per dialect, with
the dialect's own bind processors, so that values are stored exactly as SQLAlchemy stores them
(SQLite keeps datetimes as text in its own format), and is then run on the raw aiosqlite or
asyncpg connection checked out of the engine's pool.

Only for statements whose results are plain columns (text, integers): anything that needs
SQLAlchemy's result processing (JSON, datetimes on SQLite) is read through SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler


@dataclasses.dataclass(frozen=True)
class _Prepared:
    sql: str
    # Each positional parameter's name and the dialect's processor for its type (None: as is).
    parameters: list[tuple[str, Callable[[Any], Any] | None]]
    compiled: Any


class DriverStatement:
    """One SQLAlchemy statement, compiled once per dialect into the driver's SQL."""

    def __init__(self, statement: sa.sql.ClauseElement) -> None:
        self.statement = statement
        self._prepared: dict[str, _Prepared] = {}

    def arguments(self, dialect: Dialect, values: Mapping[str, Any]) -> tuple[str, list[Any]]:
        prepared = self._prepared.get(dialect.name)
        if prepared is None:
            compiled = cast(
                SQLCompiler,
                self.statement.compile(dialect=dialect),
            )
            positions = compiled.positiontup or []
            prepared = _Prepared(
                str(compiled),
                [
                    (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                    for name in positions
                ],
                compiled,
            )
            self._prepared[dialect.name] = prepared
        bound = prepared.compiled.construct_params(dict(values))
        arguments = []
        for name, process in prepared.parameters:
            value = bound[name]
            arguments.append(process(value) if process is not None else value)
        return prepared.sql, arguments


class DriverConnection(Protocol):
    async def fetch(
        self, statement: DriverStatement, values: Mapping[str, Any]
    ) -> list[Sequence[Any]]: ...

    async def execute(self, statement: DriverStatement, values: Mapping[str, Any]) -> None: ...


class _Sqlite:
    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self.connection = connection  # aiosqlite.Connection
        self.dialect = dialect

    async def fetch(
        self, statement: DriverStatement, values: Mapping[str, Any]
    ) -> list[Sequence[Any]]:
        sql, arguments = statement.arguments(self.dialect, values)
        return list(await self.connection.execute_fetchall(sql, arguments))

    async def execute(self, statement: DriverStatement, values: Mapping[str, Any]) -> None:
        sql, arguments = statement.arguments(self.dialect, values)
        await self.connection.execute(sql, arguments)


class _Postgres:
    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self.connection = connection  # asyncpg.Connection
        self.dialect = dialect

    async def fetch(
        self, statement: DriverStatement, values: Mapping[str, Any]
    ) -> list[Sequence[Any]]:
        sql, arguments = statement.arguments(self.dialect, values)
        return list(await self.connection.fetch(sql, *arguments))

    async def execute(self, statement: DriverStatement, values: Mapping[str, Any]) -> None:
        sql, arguments = statement.arguments(self.dialect, values)
        await self.connection.execute(sql, *arguments)


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[DriverConnection]:
    """A transaction on a pooled connection's driver, committed when the block ends without an
    error, rolled back otherwise."""
    async with engine.connect() as pooled:
        raw: Any = (await pooled.get_raw_connection()).driver_connection
        if engine.dialect.name == "postgresql":
            async with raw.transaction():
                yield _Postgres(raw, engine.dialect)
            return
        # sqlite3 (under aiosqlite) opens the transaction at the first write; commit ends it.
        try:
            yield _Sqlite(raw, engine.dialect)
        except BaseException:
            await raw.rollback()
            raise
        await raw.commit()
