"""Encryption at rest of secrets and callback tokens (Fernet), and the token's short hash."""

from __future__ import annotations

import os
import pathlib

from cryptography.fernet import Fernet

KEY_FILE_NAME = "secrets.key"


def load_or_create_key(explicit: str, state_dir: pathlib.Path) -> bytes:
    """The key from the environment, else from (or into) the key file under `state_dir`."""
    if explicit:
        return explicit.encode()
    path = state_dir / KEY_FILE_NAME
    if path.exists():
        return path.read_bytes().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: two processes starting at once must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


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
