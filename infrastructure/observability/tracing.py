"""Traces (OpenTelemetry), configured by the standard ``OTEL_*`` variables; off unless asked for.

On when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``) or an OTLP endpoint
is set (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), and
``OTEL_SDK_DISABLED`` is not ``true``. Everything else is the SDK's own reading of the
environment: the sampler (``OTEL_TRACES_SAMPLER``), the batching (``OTEL_BSP_*``), the OTLP
exporter's endpoint, headers and timeout, ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``.

Off, nothing is installed: no provider, no instrumentation, no span asked for; the components
that would trace are given ``None``. On, each app has a provider of its own (made here, handed to
the components and instrumentations that trace), never the process-wide one: nothing reaches for
a global, and a test's app reads its own spans.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from infrastructure.request_context import current_traceparent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

TRACER_NAME = "modular-shop"
TRACEPARENT = "traceparent"
_EXPORTERS = ("otlp", "console")


class TracingMisconfigured(ValueError):
    pass


def tracer_provider_from_env(service_name: str, environ: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """The app's tracer provider as the ``OTEL_*`` variables say, or None: tracing is off.
    ``service_name`` unless ``OTEL_SERVICE_NAME`` (or ``service.name`` in
    ``OTEL_RESOURCE_ATTRIBUTES``) says otherwise."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    named = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    exporters = named or (["otlp"] if endpoint else [])
    if not exporters or exporters == ["none"]:
        return None
    unknown = sorted(set(exporters) - set(_EXPORTERS))
    if unknown:
        raise TracingMisconfigured(
            f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} is not an exporter the shop has; use otlp, console or none"
        )
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named_by_env = "OTEL_SERVICE_NAME" in environ or "service.name=" in environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(resource=Resource.create({} if named_by_env else {SERVICE_NAME: service_name}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(exporter)))
    return provider


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def traceparent_to_pass_on() -> str | None:
    """The W3C ``traceparent`` an event records and a call to another service carries: the span
    under way's, or, where this process does not trace, the caller's, passed on unchanged."""
    if trace.get_current_span().get_span_context().is_valid:
        from opentelemetry import propagate  # the propagators are loaded where something traces

        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier.get(TRACEPARENT)
    return current_traceparent()


def add_trace_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A log processor: the ids of the span under way, to find the line's trace and the trace's lines."""
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        event_dict.setdefault("trace_id", format(span.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span.span_id, "016x"))
    return event_dict


@contextmanager
def delivery_span(
    provider: TracerProvider | None,
    subscriber: str,
    envelope: Mapping[str, Any],
    attempt: int,
) -> Iterator[None]:
    """The span of one delivery of an event to a subscriber, in the trace of the request that
    recorded the event (its ``traceparent`` in the envelope, kept by retries and replays), and
    linked to that request's span."""
    if provider is None:
        yield
        return
    from opentelemetry import propagate

    recorded = propagate.extract({TRACEPARENT: str(envelope.get("trace", {}).get(TRACEPARENT, ""))})
    recorded_span = trace.get_current_span(recorded).get_span_context()
    with provider.get_tracer(TRACER_NAME).start_as_current_span(
        f"deliver {subscriber}",
        context=recorded,
        kind=SpanKind.CONSUMER,
        links=[Link(recorded_span)] if recorded_span.is_valid else None,
        attributes={
            "shop.context": subscriber.split(".", 1)[0],
            "shop.subscriber": subscriber,
            "shop.event_type": str(envelope.get("type")),
            "shop.event_id": str(envelope.get("id")),
            "shop.attempt": attempt,
        },
    ):
        yield


class TracedUseCase:
    """A use case's handler whose every call is a span named for its context and use case
    (``order.PlaceOrder``): the module-level span, under which its SQL and calls nest."""

    def __init__(self, handler: Any, context: str, provider: TracerProvider) -> None:
        self._handler = handler
        self._tracer = provider.get_tracer(TRACER_NAME)
        use_case = type(handler).__name__.removesuffix("Handler")
        self._name = f"{context}.{use_case}"
        self._attributes = {"shop.context": context, "shop.use_case": use_case}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._tracer.start_as_current_span(self._name, attributes=self._attributes):
            return self._handler(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handler, name)
