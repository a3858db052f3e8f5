"""The claim check's errors: each names the blob's key and never the payload's content.

Reading and writing fail differently on purpose, because of what Temporal does with each:
- Reading (a reference's blob is missing, changed, too large, or the store is down) raises plain
  exceptions. In a worker that fails the workflow task, which Temporal retries until the store
  answers again: the run waits instead of failing for good (a non-retryable ApplicationError
  there would fail the whole workflow).
- Writing an activity's result that the store does not take fails that activity without retry
  (ClaimCheckWriteError is a non-retryable ApplicationError): the activity has already run, and
  the engine never runs a POST that reached its server again. A workflow task that cannot write
  is retried by Temporal whatever the error says.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError


class ClaimCheckError(Exception):
    """A payload could not be restored from the blob store."""


class InvalidKeyError(ClaimCheckError, ValueError):
    """A key a store would not accept (it could name a path outside the store's directory)."""


class BlobMissingError(ClaimCheckError):
    """The reference names a blob the store does not hold."""


class BlobTooLargeError(ClaimCheckError):
    """The blob is above the ceiling (STIGMER_CLAIM_CHECK_MAX_BYTES)."""


class DigestMismatchError(ClaimCheckError):
    """The stored bytes are not the ones the reference was made from."""


class ClaimCheckWriteError(ApplicationError):
    """A payload could not be offloaded; the type is the class name, never retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type=type(self).__name__, non_retryable=True)


class PayloadTooLargeError(ClaimCheckWriteError):
    """The payload is above the ceiling: it could never be read back."""


class StoreWriteError(ClaimCheckWriteError):
    """The store did not take a blob (unreachable, full, refused)."""


class ClaimCheckConfigError(ValueError):
    """A STIGMER_CLAIM_CHECK_* variable is malformed; the message names it."""
