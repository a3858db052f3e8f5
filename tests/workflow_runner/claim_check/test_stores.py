"""The blob stores: a directory and a PostgreSQL table (the local server, a fresh database)."""

from __future__ import annotations

import pathlib
import stat
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from backend.workflow_runner.claim_check.errors import (
    BlobMissingError,
    BlobTooLargeError,
    InvalidKeyError,
)
from backend.workflow_runner.claim_check.stores import BlobStore, FileStore, PostgresStore
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.timeout(60)

KEY = "ab" + "0" * 62


@pytest_asyncio.fixture
async def postgres_store() -> AsyncIterator[PostgresStore]:
    async with fresh_database("claim_check_test") as url:
        store = PostgresStore(url.replace("+asyncpg", ""), table="blobs_under_test")
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture(params=["file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> BlobStore:
    if request.param == "file":
        return FileStore(tmp_path / "blobs")
    return request.getfixturevalue("postgres_store")


async def test_a_blob_reads_back_and_a_second_put_of_its_key_keeps_it(store: BlobStore) -> None:
    await store.put(KEY, b"\x00first\xff")
    await store.put(KEY, b"\x00first\xff")  # A retried activity writes the same key again.
    assert await store.get(KEY) == b"\x00first\xff"
    assert await store.get(KEY, max_bytes=7) == b"\x00first\xff"


async def test_a_missing_blob_is_an_error_naming_its_key(store: BlobStore) -> None:
    with pytest.raises(BlobMissingError, match=KEY):
        await store.get(KEY)


async def test_a_blob_above_the_ceiling_is_refused_with_its_size(store: BlobStore) -> None:
    await store.put(KEY, b"x" * 1000)
    with pytest.raises(BlobTooLargeError, match=f"{KEY} is 1000 bytes, over the ceiling of 999"):
        await store.get(KEY, max_bytes=999)


@pytest.mark.parametrize("key", ["", "../escape", "a/b", ".hidden", "..", "k" * 129, "ü"])
async def test_keys_that_could_leave_the_store_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        await store.put(key, b"data")
    with pytest.raises(InvalidKeyError):
        await store.get(key)


async def test_the_file_store_writes_owner_only_files_and_leaves_no_temporary_one(
    tmp_path: pathlib.Path,
) -> None:
    store = FileStore(tmp_path / "blobs")
    await store.put(KEY, b"payload")
    path = tmp_path / "blobs" / "ab" / KEY
    assert path.read_bytes() == b"payload"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [KEY]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blobs"]


async def test_the_postgres_store_creates_its_table_once_and_shares_it(
    postgres_store: PostgresStore,
) -> None:
    await postgres_store.put(KEY, b"one")
    # A second process (another pool) finds the table and the blob.
    other = PostgresStore(postgres_store._url, table=postgres_store.table)
    try:
        assert await other.get(KEY) == b"one"
        await other.put(KEY, b"one")
    finally:
        await other.close()


def test_the_postgres_store_refuses_a_table_name_it_would_have_to_quote() -> None:
    with pytest.raises(ValueError, match="lower-case SQL identifier"):
        PostgresStore("postgresql://127.0.0.1/test", table='x"; DROP TABLE y; --')
