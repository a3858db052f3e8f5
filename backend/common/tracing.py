"""OpenTelemetry tracing for both processes: configured from the OTEL_* variables, off by default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from temporalio.contrib.opentelemetry import TracingInterceptor

# The provider both processes trace with; None while tracing is off (the default).
_provider: TracerProvider | None = None

_EXPORTERS = ("otlp", "console")


def enabled_by_env(env: Mapping[str, str] = os.environ) -> bool:
    """On when an exporter is named or an OTLP endpoint is set, unless OTEL_SDK_DISABLED=true."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",")}
    if exporters & set(_EXPORTERS):
        return True
    if "none" in exporters:
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    names = {e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e}
    if not names & set(_EXPORTERS):
        names = {"otlp"}  # Only an endpoint was given.
    exporters: list[SpanExporter] = []
    if "otlp" in names:
        # Imported only when used: the OTLP exporter reads OTEL_EXPORTER_OTLP_* itself.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())
    if "console" in names:
        exporters.append(ConsoleSpanExporter())
    return exporters


def _resource(service_name: str, env: Mapping[str, str]) -> Resource:
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over the process's default name.
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    return Resource.create({} if named else {"service.name": service_name})


def configure(service_name: str, env: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """Installs a provider exporting as the OTEL_* variables say; None (and no-op) when off."""
    if not enabled_by_env(env):
        return None
    provider = TracerProvider(resource=_resource(service_name, env))
    for exporter in _exporters(env):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    install(provider)
    return provider


def install(provider: TracerProvider) -> None:
    """Makes `provider` the one every span goes to (tests pass one with an in-memory exporter)."""
    global _provider
    _provider = provider
    trace.set_tracer_provider(provider)  # Ignored (with a warning) when one was already set.


def in_memory(service_name: str, exporter: SpanExporter) -> TracerProvider:
    """A provider that hands each span to `exporter` as it ends, for tests."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    install(provider)
    return provider


def uninstall() -> None:
    global _provider
    _provider = None


def enabled() -> bool:
    return _provider is not None


def shutdown() -> None:
    """Flushes the spans still buffered (at process exit)."""
    if _provider is not None:
        _provider.shutdown()


def tracer(name: str) -> trace.Tracer:
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer(name)


def temporal_interceptors() -> list[TracingInterceptor]:
    """For `Client.connect(interceptors=...)`: spans and context for the client and its workers."""
    if _provider is None:
        return []
    return [TracingInterceptor(_provider.get_tracer("temporalio"))]


def grpc_server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    if _provider is None:
        return []
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=_provider
    )
    return [interceptor]


def grpc_client_interceptors() -> list[Any]:
    if _provider is None:
        return []
    return list(aio_client_interceptors(tracer_provider=_provider))  # type: ignore[no-untyped-call]
