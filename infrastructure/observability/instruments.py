"""Where the metrics are taken (around a published interface's calls, a pool's connections and
every HTTP request) and the traces of requests and SQL. The components that know their own
outcomes (deliveries, the broker, the circuit breakers) record theirs where they decide them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool

from infrastructure.errors import Busy, DependencyUnavailable, OutcomeUnknown, UnexpectedAnswer
from infrastructure.http.request_id import seconds_since_start
from infrastructure.observability.metrics import ERROR, FAILED, OK, UNAVAILABLE, Metrics
from infrastructure.observability.tracing import TRACER_NAME, ChildSpansOnly

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

# The failures that say the called context could not answer, rather than that it said no: its
# service, or in process its database (a lost connection, an exhausted pool).
_UNAVAILABLE = (DependencyUnavailable, Busy, OutcomeUnknown, UnexpectedAnswer, OperationalError, PoolTimeout)
# What the Flask instrumentation leaves out, as regular expressions on the request's whole URL
# (comma-separated): the operational endpoints, and the access check each caller's readiness
# asks of a service every few seconds.
UNTRACED_PATHS = r"^[^?]*/(healthz|readyz|metrics)(\?.*)?$,^[^?]*/internal/[^?]*/access(\?.*)?$"
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
    rather than read from the pool, which SQLAlchemy tells of a check-in before the connection
    is back in; a queue pool closes what it opened beyond its size as soon as it comes back, so
    the connections beyond its size are those in use beyond it."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return  # NullPool, StaticPool: nothing kept, nothing to saturate
    name = pool_name(engine)
    in_use = metrics.db_pool_in_use.labels(name)
    overflow = metrics.db_pool_overflow.labels(name)
    size = pool.size()
    metrics.db_pool_size.labels(name).set(size)
    lock = threading.Lock()
    # The connections counted out, by their pool record: SQLAlchemy also tells of a check-in of
    # a connection whose check-out failed (a stale connection replaced, another listener's
    # refusal), which was never counted.
    out: set[int] = set()
    beyond = 0

    def moved(record: Any, *, checked_out: bool) -> None:
        nonlocal beyond
        with lock:
            if checked_out:
                out.add(id(record))
            elif id(record) in out:
                out.discard(id(record))
            else:
                return
            in_use.set(len(out))
            # Mostly 0: written only when it changes (under several workers each write is a file's).
            now_beyond = max(0, len(out) - size)
            if now_beyond != beyond:
                beyond = now_beyond
                overflow.set(beyond)

    event.listen(engine, "checkout", lambda _dbapi, record, _proxy: moved(record, checked_out=True))
    event.listen(engine, "checkin", lambda _dbapi, record: moved(record, checked_out=False))


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
        app, tracer_provider=provider, excluded_urls=UNTRACED_PATHS, enable_commenter=False
    )
    tracer = ChildSpansOnly(provider).get_tracer(TRACER_NAME)
    unmeasured = NoOpMeterProvider().get_meter(TRACER_NAME).create_up_down_counter("db.client.connections.usage")
    for engine in engines:
        EngineTracer(tracer, engine, unmeasured)  # type: ignore[no-untyped-call]
