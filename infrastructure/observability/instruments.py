"""Where the metrics are taken: around a published interface's calls, a pool's connections and
every HTTP request. The components that know their own outcomes (deliveries, the broker, the
circuit breakers) record theirs where they decide them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from sqlalchemy import Engine, event
from sqlalchemy.pool import QueuePool

from infrastructure.errors import Busy, DependencyUnavailable, OutcomeUnknown, UnexpectedAnswer
from infrastructure.http.request_id import seconds_since_start
from infrastructure.observability.metrics import ERROR, OK, UNAVAILABLE, Metrics

# The failures that say the called context could not answer, rather than that it said no.
_UNAVAILABLE = (DependencyUnavailable, Busy, OutcomeUnknown, UnexpectedAnswer)
# Methods outside this set are counted as "other": a client cannot grow the label's values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MeasuredApi:
    """A context's published interface as its callers get it, each call counted by outcome and
    timed, whether it runs in process or over HTTP: one place sees both, so the remote overhead
    is the difference of two series of one histogram."""

    def __init__(self, api: Any, context: str, *, transport: str, metrics: Metrics) -> None:
        self._api = api
        self._context = context
        self._transport = transport
        self._metrics = metrics
        self._measured: dict[str, Callable[..., Any]] = {}

    @property
    def measured(self) -> Any:
        """The interface itself (its client or facade), for what is not a call of the contract."""
        return self._api

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._api, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        measured = self._measured.get(name)
        if measured is None:
            measured = self._measured[name] = self._measure(name)
        return measured

    def _measure(self, operation: str) -> Callable[..., Any]:
        call = getattr(self._api, operation)
        duration = self._metrics.api_call_duration.labels(self._context, operation, self._transport)
        outcomes = {
            outcome: self._metrics.api_calls.labels(self._context, operation, outcome)
            for outcome in (OK, ERROR, UNAVAILABLE)
        }

        def measured(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = call(*args, **kwargs)
            except _UNAVAILABLE:
                outcomes[UNAVAILABLE].inc()
                raise
            except Exception:
                outcomes[ERROR].inc()
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
            metrics.events_recorded.labels(event_type).inc()

    return count


def pool_name(engine: Engine) -> str:
    """A pool's label: its server's kind and database, never its address or credentials."""
    url = engine.url
    database = Path(url.database).name if url.get_backend_name() == "sqlite" and url.database else url.database
    return f"{url.get_backend_name()}:{database or ''}"


def observe_pool(engine: Engine, metrics: Metrics) -> None:
    """Keep the pool's gauges current as connections are checked out and in (a scrape of several
    workers reads files, not pools, so the values must be there before it comes)."""
    pool = engine.pool
    name = pool_name(engine)
    in_use = metrics.db_pool_in_use.labels(name)
    overflow = metrics.db_pool_overflow.labels(name)
    if not isinstance(pool, QueuePool):
        return  # NullPool, StaticPool: nothing kept, nothing to saturate
    metrics.db_pool_size.labels(name).set(pool.size())

    def update(*_: Any) -> None:
        in_use.set(pool.checkedout())
        overflow.set(max(0, pool.overflow()))

    event.listen(engine, "checkout", update)
    event.listen(engine, "checkin", update)


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
        metrics.http_requests.labels(method, route, str(response.status_code)).inc()
        if seconds is not None:
            metrics.http_request_duration.labels(method, route).observe(seconds)
        return response
