"""The claim-check codec: round trips, foreign payloads, digests and the size ceiling."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib

import pytest
import temporalio.converter
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError

from backend.workflow_runner.claim_check.codec import ENCODING, ClaimCheckCodec, ClaimCheckRef
from backend.workflow_runner.claim_check.errors import (
    BlobMissingError,
    BlobTooLargeError,
    ClaimCheckError,
    DigestMismatchError,
    PayloadTooLargeError,
    StoreWriteError,
)
from backend.workflow_runner.claim_check.stores import FileStore

THRESHOLD = 2048
SECRET = "sk-live-do-not-leak"


def codec(tmp_path: pathlib.Path, max_bytes: int = 1024 * 1024) -> ClaimCheckCodec:
    return ClaimCheckCodec(FileStore(tmp_path / "blobs"), THRESHOLD, max_bytes)


def large(size: int = 10_000) -> Payload:
    body = json.dumps({"token": SECRET, "filler": "x" * size}).encode()
    return Payload(metadata={"encoding": b"json/plain", "extra": b"kept"}, data=body)


async def test_a_large_payload_becomes_a_small_reference_and_comes_back_whole(
    tmp_path: pathlib.Path,
) -> None:
    small = Payload(metadata={"encoding": b"json/plain"}, data=b'{"a":1}')
    original = large()
    encoded = await codec(tmp_path).encode([small, original])
    assert encoded[0] == small
    ref_payload = encoded[1]
    assert ref_payload.metadata["encoding"] == ENCODING
    assert ref_payload.ByteSize() < 300
    assert SECRET.encode() not in ref_payload.SerializeToString()
    ref = ClaimCheckRef.from_payload(ref_payload)
    stored = original.SerializeToString(deterministic=True)
    assert ref == ClaimCheckRef(hashlib.sha256(stored).hexdigest(), ref.key, len(stored))
    assert (tmp_path / "blobs" / ref.key[:2] / ref.key).read_bytes() == stored
    # Metadata (here an extra entry) survives: the whole Payload proto was stored.
    assert await codec(tmp_path).decode(encoded) == [small, original]


async def test_encoding_the_same_payload_again_writes_the_same_key(tmp_path: pathlib.Path) -> None:
    first = await codec(tmp_path).encode([large()])
    second = await codec(tmp_path).encode([large()])
    assert first == second
    assert len(list((tmp_path / "blobs").rglob("*"))) == 2  # One fan-out directory, one blob.


async def test_payloads_without_the_marker_pass_through_decode(tmp_path: pathlib.Path) -> None:
    # What a client without the codec (the Stigmer service) writes, large or small.
    foreign = [large(), Payload(metadata={"encoding": b"binary/null"})]
    assert await codec(tmp_path).decode(foreign) == foreign
    assert not (tmp_path / "blobs").exists()


async def test_a_reference_is_not_offloaded_again(tmp_path: pathlib.Path) -> None:
    tiny = ClaimCheckCodec(FileStore(tmp_path / "blobs"), threshold_bytes=10)
    (ref,) = await tiny.encode([large()])
    assert await tiny.encode([ref]) == [ref]


async def test_a_changed_blob_is_a_digest_mismatch_naming_the_key_not_the_content(
    tmp_path: pathlib.Path,
) -> None:
    (encoded,) = await codec(tmp_path).encode([large()])
    ref = ClaimCheckRef.from_payload(encoded)
    path = tmp_path / "blobs" / ref.key[:2] / ref.key
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError, match=ref.key) as mismatch:
        await codec(tmp_path).decode([encoded])
    assert SECRET not in str(mismatch.value)


async def test_a_missing_blob_is_an_error_naming_the_key(tmp_path: pathlib.Path) -> None:
    (encoded,) = await codec(tmp_path).encode([large()])
    ref = ClaimCheckRef.from_payload(encoded)
    (tmp_path / "blobs" / ref.key[:2] / ref.key).unlink()
    with pytest.raises(BlobMissingError, match=ref.key):
        await codec(tmp_path).decode([encoded])


async def test_a_blob_above_the_ceiling_is_refused_before_it_is_read(
    tmp_path: pathlib.Path,
) -> None:
    (encoded,) = await codec(tmp_path).encode([large(50_000)])
    ref = ClaimCheckRef.from_payload(encoded)
    with pytest.raises(BlobTooLargeError, match=f"{ref.key} is {ref.size} bytes"):
        await codec(tmp_path, max_bytes=20_000).decode([encoded])
    # A reference understating the size: the store still refuses to read past the ceiling.
    lying = dataclasses.replace(ref, size=100).to_payload()
    with pytest.raises(BlobTooLargeError, match=ref.key):
        await codec(tmp_path, max_bytes=20_000).decode([lying])


async def test_a_payload_above_the_ceiling_is_refused_when_encoded(tmp_path: pathlib.Path) -> None:
    with pytest.raises(PayloadTooLargeError, match="over the ceiling of 20000") as refused:
        await codec(tmp_path, max_bytes=20_000).encode([large(50_000)])
    assert SECRET not in str(refused.value)
    assert not (tmp_path / "blobs").exists()


async def test_a_malformed_reference_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    bad = Payload(metadata={"encoding": ENCODING}, data=b'{"key": "k"}')
    with pytest.raises(ClaimCheckError, match="malformed claim check reference"):
        await codec(tmp_path).decode([bad])


async def test_values_round_trip_through_the_data_converter(tmp_path: pathlib.Path) -> None:
    converter = dataclasses.replace(temporalio.converter.default(), payload_codec=codec(tmp_path))
    values = [{"photos": [{"id": i, "title": "t" * 20} for i in range(500)]}, "small"]
    payloads = await converter.encode(values)
    assert payloads[0].metadata["encoding"] == ENCODING
    assert payloads[1].metadata["encoding"] == b"json/plain"
    assert await converter.decode(payloads) == values


class _RefusingStore(FileStore):
    async def put(self, key: str, data: bytes) -> None:
        raise OSError(28, "No space left on device")


async def test_a_store_that_refuses_a_write_fails_it_without_retry(
    tmp_path: pathlib.Path,
) -> None:
    refusing = ClaimCheckCodec(_RefusingStore(tmp_path), THRESHOLD)
    with pytest.raises(StoreWriteError, match="did not take blob [0-9a-f]{64}: OSError") as failed:
        await refusing.encode([large()])
    # An activity whose result was not stored ran already: Temporal must not run it again.
    assert failed.value.non_retryable
    assert failed.value.type == "StoreWriteError"
    assert SECRET not in str(failed.value)


def test_read_errors_are_not_application_errors() -> None:
    # In a worker they fail the workflow task, which Temporal retries, not the workflow.
    assert not issubclass(ClaimCheckError, ApplicationError)
