"""Encryption at rest of secrets and callback tokens (Fernet), and where the key comes from."""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile

from cryptography.fernet import Fernet

KEY_FILE_NAME = "secrets.key"


class MissingKey(Exception):
    """The key cannot be had: the service must not start (its message says what to do)."""


def load_or_create_key(
    explicit: str, state_dir: pathlib.Path, *, shared_database: bool = False
) -> bytes:
    """The key from the environment, else from (or into) the key file under `state_dir`.

    `shared_database`: the database is not a local SQLite file (PostgreSQL), so replicas on
    other hosts read the same tokens. A key file is per host there: each replica would make its
    own key and could not decrypt the others' rows, so the key must be configured instead."""
    if explicit:
        return explicit.encode()
    if shared_database:
        raise MissingKey(
            "STIGMER_SECRETS_KEY is not set: with a database other than a local SQLite file, "
            "every replica must use the same configured key (a Fernet key: "
            "`python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`)"
        )
    path = state_dir / KEY_FILE_NAME
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        _create_key_file(path)
    key = path.read_bytes().strip()
    if not key:
        raise MissingKey(f"the key file {path} is empty: restore it, or set STIGMER_SECRETS_KEY")
    return key


def _create_key_file(path: pathlib.Path) -> None:
    """Writes a new key to `path` unless another process has already: whoever reads `path`
    sees a whole key, never an empty or half-written file.

    The key is written to a temporary file first and then linked to `path`: link, unlike
    rename, fails when `path` exists, so the first of several processes starting at once wins
    and the others read its key (rename would let a later one replace a key already in use)."""
    # mkstemp: mode 0600, readable by the service's user only.
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


class Cipher:
    """Encrypts strings and bytes into URL-safe text for the database."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def encrypt_text(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt_text(self, value: str) -> str:
        return self._fernet.decrypt(value.encode()).decode()

    def encrypt_bytes(self, value: bytes) -> str:
        return self._fernet.encrypt(value).decode()

    def decrypt_bytes(self, value: str) -> bytes:
        return self._fernet.decrypt(value.encode())
