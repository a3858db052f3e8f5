"""Service errors, each mapped to one canonical gRPC status code at the edge."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class; the message is safe to return to the client."""


class InvalidArgument(ServiceError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(ServiceError):
    pass


class PermissionDenied(ServiceError):
    """The caller's credential may not act in the org the request names."""


class AlreadyExists(ServiceError):
    pass


class FailedPrecondition(ServiceError):
    pass


class Aborted(ServiceError):
    pass


class Unavailable(ServiceError):
    pass
