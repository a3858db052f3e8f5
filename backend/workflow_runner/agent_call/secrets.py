"""Secret placeholders on the runner's side: the run's seal, and resolution inside activities only.

Only a placeholder sealed with the run's seal and naming a secret `use.secrets` declares resolves
(grammar: backend/common/secret_placeholders.py); any other placeholder-looking text is data and
stays literal."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterable, Sequence

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from backend.common import contract, secret_placeholders
from backend.workflow_runner.agent_call.models import SecretScope

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


def run_scope(names: Sequence[str]) -> SecretScope:
    """A run's scope: its seal drawn from the workflow's deterministic random source (the same on
    replay, unknown to whoever wrote the input); outside a workflow (interpreter tests), at random."""
    seal = workflow.uuid4().hex if workflow.in_workflow() else uuid.uuid4().hex
    return SecretScope(seal, tuple(names))


def referenced_secrets(texts: Iterable[str], scope: SecretScope) -> list[str]:
    """The distinct declared names the texts' sealed placeholders reference, in order."""
    return secret_placeholders.sealed_names(texts, scope.seal, scope.names)


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


def reseal(text: str, scope: SecretScope, values: dict[str, str], seal: str) -> str:
    """The text with the scope's placeholders of resolved names sealed with `seal` instead."""
    resealed = {name: secret_placeholders.sealed(seal, name) for name in values}
    return secret_placeholders.substitute_sealed(text, scope.seal, resealed)


def substitute(text: str, scope: SecretScope, values: dict[str, str]) -> str:
    """The text with each of the scope's placeholders replaced by its secret's value."""
    return secret_placeholders.substitute_sealed(text, scope.seal, values)
