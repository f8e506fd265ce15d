"""The shop's Prometheus metrics: one :class:`Metrics` per app, injected where things happen.

One set per app rather than prometheus-client's module-level default registry: nothing reaches
for a global (ARCHITECTURE.md, rule 7), and a test process that builds hundreds of apps reads
each app's values apart. Under gunicorn (``shop serve --prod``) every worker writes its values
to files in ``PROMETHEUS_MULTIPROC_DIR`` and the worker answering a scrape reads them all
(:mod:`.exposition`); that is why the gauges say how the workers' values combine.

Names and labels follow Prometheus' conventions: base units (``_seconds``), ``_total`` on
counters (prometheus-client adds it), and label values from closed sets — a route's template,
never its path; a subscriber's name, never an event id.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# From a millisecond (a cached read, an in-process call) to ten seconds (a request that waited
# out a remote call's timeouts and retries).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Outcomes of a published-interface call, and of a delivery of an event to a subscriber.
OK = "ok"
ERROR = "error"  # one of the interface's own errors (ProductNotFound, InsufficientStock, …)
UNAVAILABLE = "unavailable"  # the context could not answer (DependencyUnavailable, its database lost)
FAILED = "failed"  # a call: anything else (a bug); a delivery: to be tried again
DONE = "done"  # a delivery ran
REPEATED = "repeated"  # a delivery ran again, and its subscriber's inbox refused it: no effect twice
DEAD = "dead"  # attempts exhausted: a dead letter

# The states of a circuit breaker, as the value of ``shop_remote_breaker_state``.
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


class Metrics:
    """Every metric the shop records. ``registry`` None: exposed by no app's ``/metrics`` (the
    components' default, for the tools and tests that build one without an app; an app hands
    its own to every component, so that under several workers no two sets write one series)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        r = registry
        self.http_requests = Counter(
            "shop_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.http_request_duration = Histogram(
            "shop_http_request_duration_seconds",
            "Time to answer an HTTP request, from the app's first hook to its last",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.api_calls = Counter(
            "shop_api_calls",
            "Calls to a context's published interface, in process or remote, by outcome"
            " (ok, error: one of its own, unavailable, failed: anything else)",
            ["context", "operation", "outcome"],
            registry=r,
        )
        self.api_call_duration = Histogram(
            "shop_api_call_duration_seconds",
            "Duration of calls to a context's published interface; transport: in_process or http",
            ["context", "operation", "transport"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.remote_retries = Counter(
            "shop_remote_retries", "Calls to another service tried again after a failed attempt", ["target"], registry=r
        )
        self.remote_breaker_state = Gauge(
            "shop_remote_breaker_state",
            "Circuit breaker of the calls to another service: 0 closed, 1 half-open, 2 open (the most open worker)",
            ["target"],
            multiprocess_mode="livemax",
            registry=r,
        )
        self.event_deliveries = Counter(
            "shop_event_deliveries",
            "Deliveries of an event to a subscriber, by outcome"
            " (done, repeated: refused by its inbox, failed: tried again, dead: a dead letter)",
            ["subscriber", "outcome"],
            registry=r,
        )
        self.event_delivery_duration = Histogram(
            "shop_event_delivery_duration_seconds",
            "Time a subscriber took over one delivery, failed ones included",
            ["subscriber"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events_recorded = Counter(
            "shop_events_recorded",
            "Events committed to a context's outbox (orders placed: event_type order.OrderPlaced, …)",
            ["event_type"],
            registry=r,
        )
        self.broker_published = Counter(
            "shop_broker_published", "Events the relay published to the broker, confirmed", ["event_type"], registry=r
        )
        self.broker_consumed = Counter(
            "shop_broker_consumed",
            "Messages a consumer took from a subscriber's queue, by how they were settled"
            " (acked, retried: parked in the retry queue, dead_lettered)",
            ["queue", "outcome"],
            registry=r,
        )
        self.broker_redelivered = Counter(
            "shop_broker_redelivered",
            "Messages that came back to a subscriber's queue after a failed attempt",
            ["queue"],
            registry=r,
        )
        self.db_pool_in_use = Gauge(
            "shop_db_pool_connections_in_use",
            "Database connections checked out of the pool (all workers)",
            ["pool"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.db_pool_overflow = Gauge(
            "shop_db_pool_overflow_connections",
            "Connections open beyond the pool's size (all workers)",
            ["pool"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.db_pool_size = Gauge(
            "shop_db_pool_size",
            "Connections a pool keeps (all workers); it opens up to its overflow more",
            ["pool"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.periodic_handled = Counter(
            "shop_periodic_handled",
            "What housekeeping handled (task reservations_expired: reservations released at expiry)",
            ["task"],
            registry=r,
        )
        self.rate_limited = Counter(
            "shop_rate_limited_requests",
            "Requests refused with a 429, by the limit they broke (login-per-account, …)",
            ["limit"],
            registry=r,
        )

    # What is recorded per request, delivery, event or message: each series looked up once
    # (``labels()`` takes a lock and checks its arguments every time, a microsecond a request).

    def answered(self, method: str, route: str, status: str, seconds: float | None) -> None:
        self._child(self.http_requests, method, route, status).inc()
        if seconds is not None:
            self._child(self.http_request_duration, method, route).observe(seconds)

    def delivered(self, subscriber: str, outcome: str, seconds: float, deliveries: int = 1) -> None:
        """``deliveries`` that took ``seconds`` each, with one ``outcome``."""
        self._child(self.event_deliveries, subscriber, outcome).inc(deliveries)
        duration = self._child(self.event_delivery_duration, subscriber)
        for _ in range(deliveries):
            duration.observe(seconds)

    def recorded(self, event_type: str) -> None:
        self._child(self.events_recorded, event_type).inc()

    def published(self, event_type: str) -> None:
        self._child(self.broker_published, event_type).inc()

    def consumed(self, queue: str, outcome: str, *, redelivered: bool) -> None:
        self._child(self.broker_consumed, queue, outcome).inc()
        if redelivered:
            self._child(self.broker_redelivered, queue).inc()

    def _child(self, metric: Any, *values: str) -> Any:
        # Two threads may both look a new series up: labels() hands both the same child.
        child = self._children.get((metric, values))
        if child is None:
            child = self._children[(metric, values)] = metric.labels(*values)
        return child
