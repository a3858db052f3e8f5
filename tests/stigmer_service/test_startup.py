"""Start-up of the service: the secrets key must be shared where the database is (issue 14,
finding 6), and replicas starting at once agree on one schema and one key (finding 15)."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet
from temporalio.client import Client

from backend.stigmer_service import app, crypto
from backend.stigmer_service.config import Settings
from backend.stigmer_service.store import db
from tests.support.processes import child_env

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
REPLICAS = 8

# One replica's start: everything imported first, then the store opened (migrated, key loaded)
# once the test says go, so that all of them race for the same moments.
REPLICA = """
import asyncio, hashlib, pathlib, sys, time
from backend.stigmer_service import app
from backend.stigmer_service.config import Settings

settings = Settings(db_url=sys.argv[1], secrets_key=sys.argv[2])
ready, go = pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4])
ready.touch()
while not go.exists():
    time.sleep(0.005)

async def main() -> None:
    store = await app.open_store(settings)
    key = store.cipher.encrypt_text("probe")  # Proves the key is a usable Fernet key.
    assert store.cipher.decrypt_text(key) == "probe"
    await store.engine.dispose()

asyncio.run(main())
print(hashlib.sha256(pathlib.Path(sys.argv[5]).read_bytes()).hexdigest() if sys.argv[5] else "")
"""


@pytest_asyncio.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database of its own."""
    name = f"stigmer_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_postgresql_without_a_configured_key_refuses_to_start(
    postgres_url: str,
    temporal_client: Client,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each host would have made a key file of its own, unable to read the others' tokens."""
    monkeypatch.setenv("HOME", str(tmp_path))  # Where a key file would have gone.
    settings = Settings(listen="127.0.0.1:0", db_url=postgres_url, secrets_key="")
    with pytest.raises(crypto.MissingKey, match="STIGMER_SECRETS_KEY is not set"):
        async with app.running(settings, run_worker=False, client=temporal_client):
            pass
    assert not list(tmp_path.rglob(crypto.KEY_FILE_NAME))


def test_serve_without_a_key_on_postgresql_says_so_in_one_line(postgres_url: str) -> None:
    """What the operator sees: exit 2 and the reason, no traceback."""
    env = child_env({"STIGMER_DB_URL": postgres_url, "STIGMER_SECRETS_KEY": ""})
    done = subprocess.run(
        [sys.executable, "-m", "backend.stigmer_service.main", "serve", "--listen", "127.0.0.1:0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "error: STIGMER_SECRETS_KEY is not set" in done.stderr
    assert "Traceback" not in done.stderr


async def test_sqlite_without_a_key_still_makes_its_key_file(tmp_path: pathlib.Path) -> None:
    """The development default stays: a key file next to the SQLite file, kept across starts."""
    settings = Settings(db_url=f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}", secrets_key="")
    first = await app.open_store(settings)
    encrypted = first.cipher.encrypt_text("kept")
    await first.engine.dispose()
    assert (tmp_path / crypto.KEY_FILE_NAME).stat().st_mode & 0o777 == 0o600
    again = await app.open_store(settings)
    assert again.cipher.decrypt_text(encrypted) == "kept"
    await again.engine.dispose()


async def start_replicas(
    tmp_path: pathlib.Path, db_url: str, secrets_key: str, key_file: pathlib.Path | None
) -> list[str]:
    """REPLICAS processes open the store at the same moment; returns what each printed."""
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(REPLICAS)]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            REPLICA,
            db_url,
            secrets_key,
            str(ready[i]),
            str(go),
            str(key_file or ""),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_env(),
        )
        for i in range(REPLICAS)
    ]
    try:
        async with asyncio.timeout(120):
            while not all(path.exists() for path in ready):
                await asyncio.sleep(0.05)
            go.touch()
            outputs = [await process.communicate() for process in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    failures = [
        err.decode()[-2000:]
        for process, (_, err) in zip(processes, outputs, strict=True)
        if process.returncode != 0
    ]
    assert not failures, failures[0]
    return [out.decode().strip() for out, _ in outputs]


async def assert_one_schema(db_url: str) -> None:
    engine = db.create_engine(db_url)
    try:
        async with engine.connect() as conn:
            versions = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
            executions = await conn.exec_driver_sql("SELECT count(*) FROM executions")
            assert executions.scalar() == 0
    finally:
        await engine.dispose()
    assert [v for (v,) in versions] == [head_revision()]


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def test_replicas_starting_at_once_on_sqlite_share_one_schema_and_one_key(
    tmp_path: pathlib.Path,
) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    keys = await start_replicas(tmp_path, db_url, "", tmp_path / crypto.KEY_FILE_NAME)
    assert len(set(keys)) == 1 and keys[0]
    await assert_one_schema(db_url)


async def test_replicas_starting_at_once_on_postgresql_share_one_schema(
    tmp_path: pathlib.Path, postgres_url: str
) -> None:
    await start_replicas(tmp_path, postgres_url, Fernet.generate_key().decode(), None)
    await assert_one_schema(postgres_url)


def test_a_key_file_is_never_read_half_written(tmp_path: pathlib.Path) -> None:
    """Threads racing to create the key file all get the one key that the file holds (the
    file used to exist empty between its creation and the write of the key)."""
    for round_ in range(100):
        state_dir = tmp_path / f"round-{round_}"
        barrier = threading.Barrier(REPLICAS)
        keys: list[bytes | BaseException] = []

        def start(
            state_dir: pathlib.Path = state_dir,
            barrier: threading.Barrier = barrier,
            keys: list[bytes | BaseException] = keys,
        ) -> None:
            barrier.wait()
            try:
                keys.append(crypto.load_or_create_key("", state_dir))
            except BaseException as error:  # Reported below, with the round.
                keys.append(error)

        threads = [threading.Thread(target=start) for _ in range(REPLICAS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = (state_dir / crypto.KEY_FILE_NAME).read_bytes()
        assert keys == [stored] * REPLICAS, f"round {round_}: {keys}"
        Fernet(stored)  # A whole key.
