"""Secret placeholders in an execution's message, resolved from its secret runtime env entries.

The grammar is backend/common/secret_placeholders.py, shared with the runner. An execution whose
secret entries include the seal (`STIGMER_PLACEHOLDER_SEAL`, which the runner always sends with
its secrets) resolves only placeholders sealed with it, so a placeholder that reached the message
through data stays literal text; one without a seal (a direct API client's own message) resolves
the plain form `{{secret:NAME}}`.
"""

from __future__ import annotations

from backend.common import secret_placeholders

MASK = secret_placeholders.MASK


def substitute(text: str, secrets: dict[str, str]) -> str:
    """Replaces each resolvable placeholder with its value; every other one stays as it is."""
    seal = secrets.get(secret_placeholders.SEAL_ENV_NAME)
    values = {k: v for k, v in secrets.items() if k != secret_placeholders.SEAL_ENV_NAME}
    if seal is not None:
        return secret_placeholders.substitute_sealed(text, seal, values)
    return secret_placeholders.substitute_plain(text, values)


def mask(text: str, secret_values: list[str]) -> str:
    """Replaces every occurrence of a secret value with `***` (longest first)."""
    return secret_placeholders.mask(text, secret_values)
