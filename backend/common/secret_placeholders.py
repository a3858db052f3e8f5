"""The one grammar of secret placeholders, for the runner (makes and resolves them) and the service.

`{{secret:<seal>:NAME}}` is a sealed placeholder: it resolves only where the seal is known. The
runner draws a seal per workflow run (inside the workflow, replay-safe) and per agent call, so
text that came from data (workflow input, HTTP responses, agent answers) cannot name a secret:
whoever wrote it did not know the seal. `{{secret:NAME}}` is the plain form: what errors, logs and
outputs show in place of a sealed placeholder, and what a direct API client writes in its own
message when it sends its own secrets (the service resolves it only for an execution that
carries no seal).
"""

from __future__ import annotations

import re
import secrets
import urllib.parse
from collections.abc import Iterable, Mapping

# The runtime env entry (secret) in which an agent call sends its seal to the service.
SEAL_ENV_NAME = "STIGMER_PLACEHOLDER_SEAL"
MASK = "***"

_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
_SEAL = r"[0-9a-f]{32}"
SEALED_PATTERN = re.compile(r"\{\{secret:(" + _SEAL + r"):(" + _NAME + r")\}\}")
PLAIN_PATTERN = re.compile(r"\{\{secret:(" + _NAME + r")\}\}")
_SEAL_ONLY = re.compile(_SEAL)


def new_seal() -> str:
    """A fresh seal, outside workflows (workflows use `workflow.uuid4().hex`, replay-safe)."""
    return secrets.token_hex(16)


def is_seal(text: str) -> bool:
    return bool(_SEAL_ONLY.fullmatch(text))


def sealed(seal: str, name: str) -> str:
    return "{{secret:" + seal + ":" + name + "}}"


def plain(name: str) -> str:
    return "{{secret:" + name + "}}"


def sealed_names(texts: Iterable[str], seal: str, names: Iterable[str]) -> list[str]:
    """The distinct declared names the texts' placeholders with this seal reference, in order."""
    declared = set(names)
    found: dict[str, None] = {}
    for text in texts:
        for match in SEALED_PATTERN.finditer(text):
            if match.group(1) == seal and match.group(2) in declared:
                found.setdefault(match.group(2), None)
    return list(found)


def substitute_sealed(text: str, seal: str, values: Mapping[str, str]) -> str:
    """Placeholders with this seal and a known name become `values[name]`; all else stays."""

    def value(match: re.Match[str]) -> str:
        if match.group(1) != seal or match.group(2) not in values:
            return match.group(0)
        return values[match.group(2)]

    return SEALED_PATTERN.sub(value, text)


def substitute_plain(text: str, values: Mapping[str, str]) -> str:
    """Plain placeholders with a known name become `values[name]`; unknown ones stay."""
    return PLAIN_PATTERN.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def display(text: str, seal: str) -> str:
    """The text as errors, logs and outputs may show it: this seal's placeholders in plain form,
    which resolves nowhere a seal is expected."""

    def shown(match: re.Match[str]) -> str:
        return plain(match.group(2)) if match.group(1) == seal else match.group(0)

    return SEALED_PATTERN.sub(shown, text)


def mask(text: str, values: Iterable[str]) -> str:
    """Every occurrence of a value, as it is or percent-encoded (as in a URI), becomes `***`."""
    forms = {
        form
        for value in values
        if value
        for form in (
            value,
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote(value),
            urllib.parse.quote_plus(value),
        )
    }
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text
