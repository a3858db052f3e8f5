"""The claim-check PayloadCodec: payloads above a threshold go to a blob store, history keeps a
small reference.

The whole `Payload` proto is stored (metadata included), under the sha256 of its deterministic
serialization: a retried activity or a replayed workflow task writes the same key again, which
the stores ignore. A reference is a payload of its own encoding (`binary/stigmer-claim-check`)
whose data is `{"key", "sha256", "size"}` as JSON. Decoding restores only payloads with that
encoding; everything else passes through, so payloads of clients without this codec (the
Stigmer service completing an agent call) are read as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from backend.workflow_runner.claim_check.errors import (
    BlobTooLargeError,
    ClaimCheckError,
    DigestMismatchError,
    PayloadTooLargeError,
    StoreWriteError,
)
from backend.workflow_runner.claim_check.stores import BlobStore

ENCODING = b"binary/stigmer-claim-check"
DEFAULT_THRESHOLD_BYTES = 50 * 1024
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class ClaimCheckRef:
    """What history holds instead of a large payload."""

    key: str
    sha256: str
    size: int

    def to_payload(self) -> Payload:
        data = json.dumps(dataclasses.asdict(self), separators=(",", ":")).encode()
        return Payload(metadata={"encoding": ENCODING}, data=data)

    @classmethod
    def from_payload(cls, payload: Payload) -> ClaimCheckRef:
        try:
            fields = json.loads(payload.data)
            ref = cls(
                key=str(fields["key"]), sha256=str(fields["sha256"]), size=int(fields["size"])
            )
        except (ValueError, TypeError, KeyError) as error:
            raise ClaimCheckError(f"malformed claim check reference: {error}") from None
        return ref


def is_reference(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


class ClaimCheckCodec(PayloadCodec):
    """Offloads payloads whose serialized size is above `threshold_bytes` to `store`.

    `max_bytes` bounds both ends: a larger payload is refused when it is encoded (it could not
    be read back) and a larger blob is refused when it is decoded, before it is read.
    """

    def __init__(
        self,
        store: BlobStore,
        threshold_bytes: int = DEFAULT_THRESHOLD_BYTES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.store = store
        self.threshold_bytes = threshold_bytes
        self.max_bytes = max_bytes

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(await asyncio.gather(*(self._encode_one(p) for p in payloads)))

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(await asyncio.gather(*(self._decode_one(p) for p in payloads)))

    async def _encode_one(self, payload: Payload) -> Payload:
        if payload.ByteSize() <= self.threshold_bytes or is_reference(payload):
            return payload
        # Deterministic: the map of metadata serializes in one order, so the key is stable.
        data = payload.SerializeToString(deterministic=True)
        digest = hashlib.sha256(data).hexdigest()
        if len(data) > self.max_bytes:
            raise PayloadTooLargeError(
                f"payload of {len(data)} bytes (would be claim check blob {digest}) is over the "
                f"ceiling of {self.max_bytes} (STIGMER_CLAIM_CHECK_MAX_BYTES)"
            )
        try:
            await self.store.put(digest, data)
        except Exception as error:  # Not retryable: see errors.py (the activity already ran).
            raise StoreWriteError(
                f"claim check store did not take blob {digest}: {type(error).__name__}: {error}"
            ) from error
        return ClaimCheckRef(key=digest, sha256=digest, size=len(data)).to_payload()

    async def _decode_one(self, payload: Payload) -> Payload:
        if not is_reference(payload):
            return payload
        ref = ClaimCheckRef.from_payload(payload)
        if ref.size > self.max_bytes:
            raise BlobTooLargeError(
                f"claim check blob {ref.key} is {ref.size} bytes, over the ceiling of "
                f"{self.max_bytes} (STIGMER_CLAIM_CHECK_MAX_BYTES)"
            )
        data = await self.store.get(ref.key, max_bytes=self.max_bytes)
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise DigestMismatchError(
                f"claim check blob {ref.key} does not match its reference (sha256 or size "
                "differs): the store's copy was changed or truncated"
            )
        restored = Payload()
        restored.ParseFromString(data)
        return restored
