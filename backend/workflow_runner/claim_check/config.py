"""The claim check's settings from the environment, and the data converter every runner client
uses (the worker, `workflow-runner run`, `schedule`, the event router): one helper, one place.

- STIGMER_CLAIM_CHECK_STORE: `file:///abs/dir` (the default is `$XDG_STATE_HOME/stigmer/
  claim-check`, or `~/.local/state/stigmer/claim-check`), `postgresql://...`, or `off`.
- STIGMER_CLAIM_CHECK_THRESHOLD_BYTES: payloads above this many bytes are offloaded (51200).
- STIGMER_CLAIM_CHECK_MAX_BYTES: the largest blob written or read (64 MiB).

Every process that reads a runner workflow's payloads needs the same store: with the file store
that means one machine; across machines use PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import urllib.parse
from collections.abc import Mapping

import temporalio.converter

from backend.workflow_runner.claim_check.codec import (
    DEFAULT_MAX_BYTES,
    DEFAULT_THRESHOLD_BYTES,
    ClaimCheckCodec,
)
from backend.workflow_runner.claim_check.errors import ClaimCheckConfigError
from backend.workflow_runner.claim_check.stores import BlobStore, FileStore, PostgresStore

STORE_ENV = "STIGMER_CLAIM_CHECK_STORE"
THRESHOLD_ENV = "STIGMER_CLAIM_CHECK_THRESHOLD_BYTES"
MAX_BYTES_ENV = "STIGMER_CLAIM_CHECK_MAX_BYTES"
OFF = "off"
# A reference is about 200 bytes: a lower threshold would offload payloads no larger than it.
MIN_THRESHOLD_BYTES = 1024
# The last is SQLAlchemy's spelling (STIGMER_DB_URL's), accepted so one URL serves both.
_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")


@dataclasses.dataclass(frozen=True)
class ClaimCheckSettings:
    """`store` is a URL (`file:///...` or `postgresql://...`) or "off"."""

    store: str
    threshold_bytes: int = DEFAULT_THRESHOLD_BYTES
    max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def enabled(self) -> bool:
        return self.store != OFF

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClaimCheckSettings:
        """Raises ClaimCheckConfigError naming the variable when one is malformed (never echoing a store
        URL, which can carry a password)."""
        env = os.environ if environ is None else environ
        store = env.get(STORE_ENV, "").strip() or default_store_url(env)
        if store.lower() == OFF:
            store = OFF
        settings = cls(
            store=store,
            threshold_bytes=_positive(env, THRESHOLD_ENV, DEFAULT_THRESHOLD_BYTES),
            max_bytes=_positive(env, MAX_BYTES_ENV, DEFAULT_MAX_BYTES),
        )
        if settings.threshold_bytes < MIN_THRESHOLD_BYTES:
            raise ClaimCheckConfigError(f"{THRESHOLD_ENV}: must be at least {MIN_THRESHOLD_BYTES}")
        if settings.max_bytes < settings.threshold_bytes:
            raise ClaimCheckConfigError(f"{MAX_BYTES_ENV}: must not be below {THRESHOLD_ENV}")
        if settings.enabled:
            open_store(settings.store)  # Fails now, not at the first large payload.
        return settings


def default_store_url(environ: Mapping[str, str]) -> str:
    state = environ.get("XDG_STATE_HOME", "").strip()
    base = pathlib.Path(state) if state else pathlib.Path.home() / ".local" / "state"
    return (base / "stigmer" / "claim-check").absolute().as_uri()


def _positive(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ClaimCheckConfigError(f"{name}: not a whole number of bytes: {text!r}") from None
    if value <= 0:
        raise ClaimCheckConfigError(f"{name}: must be above zero")
    return value


def open_store(url: str) -> BlobStore:
    """The store a STIGMER_CLAIM_CHECK_STORE URL names (a PostgreSQL store connects lazily)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise ClaimCheckConfigError(f"{STORE_ENV}: a file store is file:///absolute/directory")
        return FileStore(pathlib.Path(urllib.parse.unquote(parsed.path)))
    if parsed.scheme in _POSTGRES_SCHEMES:
        return PostgresStore(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    raise ClaimCheckConfigError(
        f"{STORE_ENV}: expected file:///absolute/directory, postgresql://... or off"
    )


def codec(settings: ClaimCheckSettings) -> ClaimCheckCodec | None:
    if not settings.enabled:
        return None
    return ClaimCheckCodec(open_store(settings.store), settings.threshold_bytes, settings.max_bytes)


def data_converter(
    settings: ClaimCheckSettings | None = None,
) -> temporalio.converter.DataConverter:
    """Temporal's default converter with the claim-check codec (the default one when "off").

    Pass it as `Client.connect(data_converter=...)`; the worker built on that client uses it.
    """
    found = codec(settings or ClaimCheckSettings.from_env())
    default = temporalio.converter.default()
    return default if found is None else dataclasses.replace(default, payload_codec=found)


async def close(converter: temporalio.converter.DataConverter) -> None:
    """Closes the store of `converter`'s claim-check codec (its PostgreSQL pool), if it has one."""
    if isinstance(converter.payload_codec, ClaimCheckCodec):
        await converter.payload_codec.store.close()
