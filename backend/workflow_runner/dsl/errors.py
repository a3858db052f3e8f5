"""The DSL's error shape (type, status, title, detail, instance) as a dataclass and an exception."""

from __future__ import annotations

import dataclasses
from typing import Any

ERROR_TYPE_PREFIX = "https://serverlessworkflow.io/spec/1.0.0/errors/"
CONFIGURATION = ERROR_TYPE_PREFIX + "configuration"
VALIDATION = ERROR_TYPE_PREFIX + "validation"
EXPRESSION = ERROR_TYPE_PREFIX + "expression"
AUTHENTICATION = ERROR_TYPE_PREFIX + "authentication"
AUTHORIZATION = ERROR_TYPE_PREFIX + "authorization"
TIMEOUT = ERROR_TYPE_PREFIX + "timeout"
COMMUNICATION = ERROR_TYPE_PREFIX + "communication"
RUNTIME = ERROR_TYPE_PREFIX + "runtime"
# The older spelling of the same standard types, used by the specification's own conformance
# scenarios (ctk/features/try.feature) and by documents written against them. Errors are always
# raised with ERROR_TYPE_PREFIX; `catch` accepts either spelling.
LEGACY_ERROR_TYPE_PREFIX = "https://serverlessworkflow.io/dsl/errors/types/"


def canonical_type(error_type: str) -> str:
    """A standard error type in the DSL reference's spelling; any other type unchanged."""
    if error_type.startswith(LEGACY_ERROR_TYPE_PREFIX):
        return ERROR_TYPE_PREFIX + error_type.removeprefix(LEGACY_ERROR_TYPE_PREFIX)
    return error_type


@dataclasses.dataclass
class DslError:
    """A workflow error as the DSL describes it; `instance` is the JSON pointer of the task."""

    type: str
    status: int
    title: str = ""
    detail: str = ""
    instance: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "title": self.title,
            "detail": self.detail,
            "instance": self.instance,
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> DslError:
        return cls(
            type=str(value.get("type", RUNTIME)),
            status=int(value.get("status", 500)),
            title=str(value.get("title") or ""),
            detail=str(value.get("detail") or ""),
            instance=str(value.get("instance") or ""),
        )

    @classmethod
    def from_failure(cls, failure: BaseException) -> DslError:
        """The DSL error a failed DslWorkflow reported (a client's WorkflowFailureError), or a
        runtime error describing any other failure."""
        cause = getattr(failure, "cause", None) or failure.__cause__
        details = getattr(cause, "details", None)
        if details and isinstance(details[0], dict):
            return cls.from_dict(details[0])
        return cls(RUNTIME, 500, "Workflow failed", str(cause or failure), "/")

    def describe(self) -> str:
        parts = [f"{self.title or 'Workflow error'} ({self.type}, status {self.status})"]
        if self.instance:
            parts.append(f"at {self.instance}")
        text = " ".join(parts)
        return f"{text}: {self.detail}" if self.detail else text


class DslException(Exception):
    """Raised inside the interpreter; carries the DSL error so that `catch` can filter on it."""

    def __init__(self, error: DslError) -> None:
        super().__init__(error.describe())
        self.error = error


def expression_error(detail: str, instance: str) -> DslException:
    return DslException(DslError(EXPRESSION, 400, "Expression evaluation failed", detail, instance))


def validation_error(detail: str, instance: str) -> DslException:
    return DslException(DslError(VALIDATION, 400, "Validation failed", detail, instance))
