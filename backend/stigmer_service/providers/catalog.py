"""The model providers the operator configured: named endpoints with their key source.

An agent picks a provider by name (`model: <provider>/<model>`) and nothing else: the endpoint
and the key come only from here, so an agent definition cannot send a key to a host of its
choosing. Sources, later ones overriding earlier ones by name:

- the built-in `openai` provider (`OPENAI_BASE_URL`, key from `OPENAI_API_KEY`);
- the built-in `offline` provider, only when the operator enables it (`STIGMER_OFFLINE_PROVIDER`);
- the YAML file `STIGMER_PROVIDERS_FILE`:

      providers:
        local-llm: {kind: openai-compatible, base_url: "http://127.0.0.1:11434/v1"}
        gateway: {kind: openai-compatible, base_url: "https://gw/v1", api_key_file: /run/key}
        offline: {kind: offline}
      default_model: local-llm/llama3
"""

from __future__ import annotations

import dataclasses
import enum
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import yaml

from backend.stigmer_service.config import Settings

OPENAI = "openai"
OFFLINE = "offline"
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
# The model of an agent that names none, when the offline provider is on and none is configured.
OFFLINE_DEFAULT_MODEL = "offline/echo"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_FIELDS = frozenset({"kind", "base_url", "api_key_env", "api_key_file"})


class Kind(enum.StrEnum):
    OPENAI_COMPATIBLE = "openai-compatible"
    OFFLINE = "offline"


class ProviderConfigError(ValueError):
    """The providers file (or a setting) is not a valid provider configuration."""


@dataclasses.dataclass(frozen=True)
class OfflineLimits:
    """How far the offline provider's directives reach (see providers/offline.py)."""

    max_sleep: float = 60.0
    # `#wait-for=<path>` makes the service poll its own file system: a test hook only.
    gates: bool = False


DEFAULT_LIMITS = OfflineLimits()


@dataclasses.dataclass(frozen=True)
class ProviderConfig:
    name: str
    kind: Kind
    base_url: str = ""
    # Where the key comes from: a variable of the service's environment, or a file.
    api_key_env: str = ""
    api_key_file: str = ""
    offline: OfflineLimits = DEFAULT_LIMITS

    def api_key(self, runtime_env: Mapping[str, str]) -> str:
        """The key: the configured variable from the execution's runtime env (a caller's own key
        for this same endpoint), else from the service's env; or the key file's first line."""
        if self.api_key_file:
            try:
                lines = pathlib.Path(self.api_key_file).read_text(encoding="utf-8").splitlines()
            except OSError:
                return ""
            return lines[0].strip() if lines else ""
        if self.api_key_env:
            # The variable's name is the operator's provider configuration (any name the
            # providers file gives), so it is looked up in a copy of the environment.
            service_env = dict(os.environ)
            return runtime_env.get(self.api_key_env) or service_env.get(self.api_key_env, "")
        return ""


@dataclasses.dataclass(frozen=True)
class Catalog:
    providers: Mapping[str, ProviderConfig]
    default_model: str = ""

    def get(self, name: str) -> ProviderConfig | None:
        return self.providers.get(name)

    def names(self) -> list[str]:
        return sorted(self.providers)


def builtin_openai() -> ProviderConfig:
    return ProviderConfig(
        OPENAI,
        Kind.OPENAI_COMPATIBLE,
        base_url=os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL,
        api_key_env=OPENAI_KEY_ENV,
    )


def _one(name: str, fields: Any, limits: OfflineLimits, source: str) -> ProviderConfig:
    where = f"{source}: providers.{name}"
    if not NAME_PATTERN.match(name):
        raise ProviderConfigError(f"{where}: a name is lowercase letters, digits, '-' and '_'")
    if not isinstance(fields, dict):
        raise ProviderConfigError(f"{where}: must be a mapping")
    if unknown := sorted(set(fields) - _FIELDS):
        raise ProviderConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    try:
        kind = Kind(str(fields.get("kind", "")))
    except ValueError:
        choices = ", ".join(k.value for k in Kind)
        raise ProviderConfigError(f"{where}.kind: must be one of {choices}") from None
    values = {k: str(fields.get(k) or "") for k in ("base_url", "api_key_env", "api_key_file")}
    if kind is Kind.OPENAI_COMPATIBLE:
        if not re.match(r"^https?://[^/\s]+", values["base_url"]):
            raise ProviderConfigError(f"{where}.base_url: must be an http(s) URL")
        if values["api_key_env"] and values["api_key_file"]:
            raise ProviderConfigError(f"{where}: set api_key_env or api_key_file, not both")
    elif any(values.values()):
        raise ProviderConfigError(f"{where}: an offline provider takes no endpoint or key")
    return ProviderConfig(name, kind, **values, offline=limits)


def parse(text: str, source: str, limits: OfflineLimits) -> tuple[dict[str, ProviderConfig], str]:
    """(providers by name, default model) of a providers file's text."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ProviderConfigError(f"{source}: not YAML: {error}") from None
    if not isinstance(document, dict) or set(document) - {"providers", "default_model"}:
        raise ProviderConfigError(f"{source}: expected the keys providers and default_model")
    entries = document.get("providers") or {}
    if not isinstance(entries, dict):
        raise ProviderConfigError(f"{source}: providers must be a mapping of name to provider")
    found = {str(name): _one(str(name), fields, limits, source) for name, fields in entries.items()}
    return found, str(document.get("default_model") or "")


def build(
    *,
    providers_file: str = "",
    offline: bool = False,
    default_model: str = "",
    limits: OfflineLimits = DEFAULT_LIMITS,
) -> Catalog:
    """The catalog of the service's settings; raises ProviderConfigError on a bad file."""
    providers: dict[str, ProviderConfig] = {OPENAI: builtin_openai()}
    if offline:
        providers[OFFLINE] = ProviderConfig(OFFLINE, Kind.OFFLINE, offline=limits)
    file_default = ""
    if providers_file:
        try:
            text = pathlib.Path(providers_file).read_text(encoding="utf-8")
        except OSError as error:
            raise ProviderConfigError(f"{providers_file}: {error.strerror or error}") from None
        configured, file_default = parse(text, providers_file, limits)
        providers.update(configured)
    chosen = default_model or file_default
    if not chosen and OFFLINE in providers:
        chosen = OFFLINE_DEFAULT_MODEL
    if chosen and chosen.partition("/")[0] not in providers:
        raise ProviderConfigError(f"default model {chosen!r}: no provider of that name")
    return Catalog(providers, chosen)


def from_settings(settings: Settings) -> Catalog:
    """The model providers of the service's settings; raises ProviderConfigError."""
    return build(
        providers_file=settings.providers_file,
        offline=settings.offline_provider,
        default_model=settings.default_model,
        limits=OfflineLimits(settings.offline_max_sleep, settings.test_offline_gates),
    )
