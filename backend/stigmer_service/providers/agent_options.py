"""The model options an agent may not set: the endpoint and the key source are the operator's."""

from __future__ import annotations

from ai.stigmer.agentic.agent.v1 import spec_pb2

from backend.stigmer_service.errors import InvalidArgument

# Kept in the proto for compatibility; refused on write and ignored when already stored.
OPERATOR_ONLY = ("base_url", "api_key_env")


def check(options: spec_pb2.ModelOptions, field: str) -> None:
    """Refuses `options` (at `field`, e.g. `agent.spec.model_options`) that name an endpoint or
    a key variable: an agent picks a configured provider by `spec.model`, nothing more."""
    for name in OPERATOR_ONLY:
        if getattr(options, name):
            raise InvalidArgument(
                f"{field}.{name}",
                "is not accepted: endpoints and keys are the operator's provider configuration "
                "(STIGMER_PROVIDERS_FILE); pick a configured provider with spec.model",
            )
