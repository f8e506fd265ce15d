"""Where the metrics are taken (around a published interface's calls, a pool's connections and
every HTTP request) and the traces of requests and SQL. The components that know their own
outcomes (deliveries, the broker, the circuit breakers) record theirs where they decide them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from opentelemetry import trace
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool

from infrastructure.errors import Busy, DependencyUnavailable, OutcomeUnknown, UnexpectedAnswer
from infrastructure.http.request_id import seconds_since_start
from infrastructure.observability.metrics import ERROR, FAILED, OK, UNAVAILABLE, Metrics
from infrastructure.observability.tracing import TRACER_NAME

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider

# The failures that say the called context could not answer, rather than that it said no: its
# service, or in process its database (a lost connection, an exhausted pool).
_UNAVAILABLE = (DependencyUnavailable, Busy, OutcomeUnknown, UnexpectedAnswer, OperationalError, PoolTimeout)
# Methods outside this set are counted as "other": a client cannot grow the label's values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MeasuredApi:
    """A context's published interface as its callers get it, each call counted by outcome and
    timed, whether it runs in process or over HTTP: one place sees both, so the remote overhead
    is the difference of two series of one histogram. ``errors_module``: where the interface's
    own errors are defined (its ``api`` module); what else a call raises is a failure."""

    def __init__(self, api: Any, context: str, *, transport: str, errors_module: str, metrics: Metrics) -> None:
        self._api = api
        self._context = context
        self._transport = transport
        self._errors_module = errors_module
        self._metrics = metrics

    @property
    def inner(self) -> Any:
        """The interface itself (its client or facade), for what is not a call of the contract."""
        return self._api

    def __getattr__(self, name: str) -> Any:
        """Called once per operation: its measured call is then an attribute of the instance."""
        attribute = getattr(self._api, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        measured = self._measure(name)
        self.__dict__[name] = measured
        return measured

    def _measure(self, operation: str) -> Callable[..., Any]:
        call = getattr(self._api, operation)
        duration = self._metrics.api_call_duration.labels(self._context, operation, self._transport)
        outcomes = {
            outcome: self._metrics.api_calls.labels(self._context, operation, outcome)
            for outcome in (OK, ERROR, UNAVAILABLE, FAILED)
        }
        errors_module = self._errors_module

        def measured(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = call(*args, **kwargs)
            except _UNAVAILABLE:
                outcomes[UNAVAILABLE].inc()
                raise
            except Exception as error:
                outcomes[ERROR if type(error).__module__ == errors_module else FAILED].inc()
                raise
            finally:
                duration.observe(time.perf_counter() - started)
            outcomes[OK].inc()
            return result

        return measured


def recorded_events_counter(metrics: Metrics) -> Callable[[Sequence[str]], None]:
    """An outbox's listener counting the events of each commit by type (orders placed are
    ``order.OrderPlaced``): counted once committed, never for a transaction rolled back."""

    def count(event_types: Sequence[str]) -> None:
        for event_type in event_types:
            metrics.recorded(event_type)

    return count


def pool_name(engine: Engine) -> str:
    """A pool's label: its server's kind and database, never its address or credentials."""
    url = engine.url
    database = Path(url.database).name if url.get_backend_name() == "sqlite" and url.database else url.database
    return f"{url.get_backend_name()}:{database or ''}"


def observe_pool(engine: Engine, metrics: Metrics) -> None:
    """Keep the pool's gauges current as connections are checked out and in (a scrape of several
    workers reads files, not pools, so the values must be there before it comes). Counted here
    rather than read from the pool: SQLAlchemy tells of a check-in before the connection is
    back, and a queue pool closes what it opened beyond its size as soon as it comes back, so
    the connections beyond it are those in use beyond it."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return  # NullPool, StaticPool: nothing kept, nothing to saturate
    name = pool_name(engine)
    in_use = metrics.db_pool_in_use.labels(name)
    overflow = metrics.db_pool_overflow.labels(name)
    size = pool.size()
    metrics.db_pool_size.labels(name).set(size)
    lock = threading.Lock()
    checked_out = beyond = 0

    def moved(by: int) -> None:
        nonlocal checked_out, beyond
        with lock:
            checked_out += by
            in_use.set(checked_out)
            # Mostly 0: written only when it changes (under several workers each write is a file's).
            if max(0, checked_out - size) != beyond:
                beyond = max(0, checked_out - size)
                overflow.set(beyond)

    event.listen(engine, "checkout", lambda *_: moved(1))
    event.listen(engine, "checkin", lambda *_: moved(-1))


def install_request_metrics(app: Flask, metrics: Metrics) -> None:
    """Count and time every request by method, route template and status (RED), timed from
    the request id's hook (installed first). Requests matching no route count under
    ``unmatched``: a scanner's paths never become label values."""

    @app.after_request
    def _count(response: Response) -> Response:
        seconds = seconds_since_start()
        rule = request.url_rule
        route = rule.rule if rule is not None else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        metrics.answered(method, route, str(response.status_code), seconds)
        return response


def trace_requests_and_sql(app: Flask, provider: TracerProvider, engines: Iterable[Engine]) -> None:
    """A server span per request (OpenTelemetry's Flask instrumentation, which continues the
    caller's ``traceparent``) and a client span per SQL statement on ``engines`` (its SQLAlchemy
    instrumentation's engine tracer, given this app's provider: the instrumentor itself would
    patch ``create_engine`` for the whole process). The operational endpoints are left out."""
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeterProvider

    FlaskInstrumentor.instrument_app(  # type: ignore[no-untyped-call]
        app, tracer_provider=provider, excluded_urls="/healthz,/readyz,/metrics", enable_commenter=False
    )
    tracer = _WithinATrace(provider.get_tracer(TRACER_NAME))
    unmeasured = NoOpMeterProvider().get_meter(TRACER_NAME).create_up_down_counter("db.client.connections.usage")
    for engine in engines:
        EngineTracer(tracer, engine, unmeasured)  # type: ignore[no-untyped-call]


class _WithinATrace:
    """A tracer whose spans are only ever children: a statement is traced as part of the request,
    use case or delivery it serves, never as a trace of one statement."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(self, name: str, context: Context | None = None, *args: Any, **kwargs: Any) -> trace.Span:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return trace.INVALID_SPAN
        return self._tracer.start_span(name, context, *args, **kwargs)

    def start_as_current_span(
        self, name: str, context: Context | None = None, *args: Any, **kwargs: Any
    ) -> AbstractContextManager[trace.Span]:
        if not trace.get_current_span(context).get_span_context().is_valid:
            return nullcontext(trace.INVALID_SPAN)
        return self._tracer.start_as_current_span(name, context, *args, **kwargs)
