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

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# From a millisecond (a cached read, an in-process call) to ten seconds (a request that waited
# out a remote call's timeouts and retries).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Outcomes of a published-interface call.
OK = "ok"
ERROR = "error"  # one of the interface's own errors (ProductNotFound, InsufficientStock, …)
UNAVAILABLE = "unavailable"  # the context could not answer (DependencyUnavailable and kin)

# Outcomes of a delivery of an event to a subscriber.
DONE = "done"
FAILED = "failed"  # to be tried again
DEAD = "dead"  # attempts exhausted: a dead letter

# The states of a circuit breaker, as the value of ``shop_remote_breaker_state``.
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}


class Metrics:
    """Every metric the shop records. ``registry`` None: recorded and never exposed (the
    components' default, for tools and tests that build one without an app)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry
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
            "Calls to a context's published interface, in process or remote, by outcome (ok, error, unavailable)",
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
            "Deliveries of an event to a subscriber, by outcome (done, failed: tried again, dead: a dead letter)",
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
            "Requests refused with a 429, by the limit they broke (login_per_account, …)",
            ["limit"],
            registry=r,
        )
