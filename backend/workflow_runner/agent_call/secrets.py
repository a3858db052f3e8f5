"""Resolves an agent call's `{{secret:NAME}}` placeholders in the activity, never the workflow."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from backend.common import contract
from backend.workflow_runner.agent_call.models import SECRET_PLACEHOLDER_PATTERN

SECRET_ENV_PREFIX = "STIGMER_SECRET_"

# Returns the secret's value, or None when the worker does not know it.
SecretResolver = Callable[[str], str | None]

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")


def secret_env_var(name: str) -> str:
    """The environment variable the default resolver reads for a secret name."""
    return SECRET_ENV_PREFIX + _NON_ALNUM.sub("_", name).upper()


def env_secret_resolver(name: str) -> str | None:
    """The default resolver: the worker's environment, `STIGMER_SECRET_<NAME>`."""
    return os.environ.get(secret_env_var(name))


def referenced_secrets(texts: Iterable[str]) -> list[str]:
    """The distinct secret names the texts reference, in order of first appearance."""
    names: dict[str, None] = {}
    for text in texts:
        for match in SECRET_PLACEHOLDER_PATTERN.finditer(text):
            names.setdefault(match.group(1), None)
    return list(names)


def resolve_secrets(names: Iterable[str], resolver: SecretResolver) -> dict[str, str]:
    """Every named secret's value; a missing one is a non-retryable failure naming it."""
    values: dict[str, str] = {}
    for name in names:
        value = resolver(name)
        if value is None:
            raise ApplicationError(
                f"secret {name!r} is not known to this worker (set {secret_env_var(name)})",
                {"secret": name},
                type=contract.SECRET_NOT_FOUND,
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            )
        values[name] = value
    return values


def substitute(text: str, values: dict[str, str]) -> str:
    """The text with each placeholder replaced by its secret's value."""
    return SECRET_PLACEHOLDER_PATTERN.sub(lambda match: values[match.group(1)], text)
