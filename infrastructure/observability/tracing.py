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
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cache
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from infrastructure.request_context import current_traceparent

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACER_NAME = "modular-shop"
# Where the contexts' typed errors live (ARCHITECTURE.md, rule 8): every context's package.
TYPED_ERRORS = "contexts."
TRACEPARENT = "traceparent"
_EXPORTERS = ("otlp", "console")


class TracingMisconfigured(ValueError):
    pass


def tracer_provider_from_env(service_name: str, environ: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """The app's tracer provider as the ``OTEL_*`` variables say, or None: tracing is off.
    ``service_name`` unless ``OTEL_SERVICE_NAME`` (or ``service.name`` in
    ``OTEL_RESOURCE_ATTRIBUTES``) says otherwise."""
    exporters = traces_exporters(environ)
    if not exporters:
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named_by_env = "OTEL_SERVICE_NAME" in environ or "service.name=" in environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(resource=Resource.create({} if named_by_env else {SERVICE_NAME: service_name}))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(exporter)))
    return provider


def traces_exporters(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The exporters the ``OTEL_*`` variables ask for (none: tracing is off); raises
    :class:`TracingMisconfigured` naming the variable the shop cannot follow. ``shop serve
    --prod`` asks before forking, so that a mistake is one message, not a traceback per worker."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = [name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    exporters = named or (["otlp"] if endpoint else [])
    if exporters == ["none"]:
        return []
    unknown = sorted(set(exporters) - set(_EXPORTERS))
    if unknown:
        raise TracingMisconfigured(
            f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} is not an exporter the shop has; use otlp, console or none"
        )
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(variable, "").strip()
        if protocol and protocol != "http/protobuf" and "otlp" in exporters:
            raise TracingMisconfigured(
                f"{variable}: the shop exports OTLP over HTTP (http/protobuf), not {protocol};"
                " point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP port (4318)"
            )
    return exporters


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def traceparent_to_pass_on() -> str | None:
    """The W3C ``traceparent`` an event records and a call to another service carries: the span
    under way's, or, where this process does not trace, the caller's, passed on unchanged.
    Always W3C's, whatever ``OTEL_PROPAGATORS`` says: it is the envelope's field (API.md)."""
    if trace.get_current_span().get_span_context().is_valid:
        carrier: dict[str, str] = {}
        _w3c().inject(carrier)
        return carrier.get(TRACEPARENT)
    return current_traceparent()


@cache
def _w3c() -> TraceContextTextMapPropagator:
    """W3C's propagator, made once: it holds no state, and every traced call and delivery asks for it."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


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
    recorded the event: the child of the span under way when the event was recorded (the
    envelope's ``traceparent``, kept by retries and replays), and linked to it, as messaging
    spans are. An event recorded outside any trace starts one."""
    if provider is None:
        yield
        return
    recorded = _w3c().extract({TRACEPARENT: str(envelope.get("trace", {}).get(TRACEPARENT, ""))})
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
    """A use case's handler whose every call within a trace (a request's, a delivery's) is a span
    named for its context and use case (``order.PlaceOrder``): the module-level span, under
    which its SQL and calls nest. Housekeeping and commands start no traces. The contexts' typed
    errors (their domains', applications' and published interfaces': a 404, a 409) are outcomes,
    not span errors; any other is recorded on the span."""

    def __init__(self, handler: Any, context: str, provider: TracerProvider) -> None:
        self._handler = handler
        self._tracer = provider.get_tracer(TRACER_NAME)
        use_case = type(handler).__name__.removesuffix("Handler")
        self._name = f"{context}.{use_case}"
        self._attributes = {"shop.context": context, "shop.use_case": use_case}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not trace.get_current_span().get_span_context().is_valid:
            return self._handler(*args, **kwargs)
        with self._tracer.start_as_current_span(
            self._name, attributes=self._attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                return self._handler(*args, **kwargs)
            except Exception as error:
                if not type(error).__module__.startswith(TYPED_ERRORS):
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handler, name)


class ChildSpansOnly(trace.TracerProvider):
    """A tracer provider whose tracers start spans only within a span under way: what an
    instrumentation traces (a statement, a call to another service) is traced as part of the
    request, use case or delivery it serves, never as a trace of its own (the dispatcher's
    polling, readiness probes)."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _WithinATrace(self._provider.get_tracer(*args, **kwargs))


class _WithinATrace(trace.Tracer):
    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(self, name: str, context: Context | None = None, *args: Any, **kwargs: Any) -> trace.Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, *args, **kwargs)

    def start_as_current_span(  # type: ignore[override]  # the API's is a decorated generator
        self, name: str, context: Context | None = None, *args: Any, **kwargs: Any
    ) -> AbstractContextManager[trace.Span]:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return nullcontext(trace.INVALID_SPAN)
        return self._tracer.start_as_current_span(name, context, *args, **kwargs)
