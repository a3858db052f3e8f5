"""Agent-call error types; how a gRPC error of the Stigmer service becomes a Temporal failure."""

from __future__ import annotations

import grpc
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

# Transient: the activity is retried (and the retry reuses the idempotency key, so no duplicate).
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# The request itself is wrong or refused: retrying cannot help.
NON_RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


def from_grpc_error(error: grpc.aio.AioRpcError, action: str) -> ApplicationError:
    """A Temporal failure for a failed call to the Stigmer service, retryable only if transient."""
    code = error.code()
    details = error.details() or ""
    return ApplicationError(
        f"{action} failed: {code.name}: {details}",
        {"grpc_status": code.name, "grpc_details": details},
        type=code.name,
        non_retryable=code in NON_RETRYABLE_CODES,
        category=ApplicationErrorCategory.BENIGN,
    )
