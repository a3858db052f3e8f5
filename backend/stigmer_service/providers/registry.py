"""Picks the configured provider of a `provider/name` model string.

The API checks a model against the catalog of the service that runs in this process (`serving`),
since a servicer has no settings of its own; the agent activity passes its catalog explicitly.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from backend.stigmer_service.providers.base import Provider, permanent
from backend.stigmer_service.providers.catalog import Catalog, Kind, ProviderConfig, build
from backend.stigmer_service.providers.offline import OfflineProvider
from backend.stigmer_service.providers.openai import OpenAIProvider

# The metric label of a model whose provider is not configured (labels stay a known set).
UNKNOWN = "unknown"

# The catalogs of the services running in this process, newest last: one in production, a few
# nested ones in tests.
_serving: list[Catalog] = []


@contextlib.contextmanager
def serving(catalog: Catalog) -> Iterator[None]:
    """While a service runs, the API validates models against its catalog."""
    _serving.append(catalog)
    try:
        yield
    finally:
        _serving.remove(catalog)


def current() -> Catalog:
    """The running service's catalog; with none running, the built-in `openai` provider only."""
    return _serving[-1] if _serving else build()


@dataclasses.dataclass(frozen=True)
class Resolved:
    provider: Provider
    config: ProviderConfig
    model: str  # The part after "provider/".

    @property
    def full_name(self) -> str:
        return f"{self.config.name}/{self.model}"


def provider_label(model: str, catalog: Catalog | None = None) -> str:
    """The provider name of `model` as a metric label: a configured name, else `unknown`."""
    name = model.partition("/")[0]
    return name if (catalog or current()).get(name) is not None else UNKNOWN


def resolve(model: str, catalog: Catalog | None = None) -> Resolved:
    """The provider of `model` (the catalog's default model when empty); raises a permanent
    ModelCallError naming the configured providers when there is none of that name."""
    catalog = catalog or current()
    chosen = model or catalog.default_model
    if not chosen:
        raise permanent(
            "no model: the agent names none and the service has no default model "
            "(set spec.model to <provider>/<model>)"
        )
    name, _, model_name = chosen.partition("/")
    config = catalog.get(name)
    if config is None:
        known = ", ".join(catalog.names())
        raise permanent(
            f"unknown model {chosen!r}: no provider {name!r} is configured "
            f"(use <provider>/<model> with one of: {known})"
        )
    if config.kind is Kind.OFFLINE:
        return Resolved(OfflineProvider(config.offline), config, model_name)
    if not model_name:
        raise permanent(f"model {chosen!r}: name the model after {name}/")
    return Resolved(OpenAIProvider(config), config, model_name)
