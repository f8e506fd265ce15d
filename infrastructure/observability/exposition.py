"""``GET /metrics``: the app's metrics in Prometheus' text format, one process or several.

Under gunicorn each worker records into files of its own in ``PROMETHEUS_MULTIPROC_DIR`` (set by
``shop serve --prod`` before any worker starts, so prometheus-client picks its file-backed values
at import) and whichever worker answers a scrape reads every worker's files: the counts are the
process's, whichever worker Prometheus reaches. What is read at scrape time from the databases
(the delivery backlog) is read by the answering worker alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Protocol

import structlog
from flask import Blueprint, Response, request
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from infrastructure.auth.bearer import presents
from infrastructure.events.delivery_ledger import SubscriberStatus
from infrastructure.http.problems import Problem
from infrastructure.observability.metrics import Metrics
from infrastructure.observability.workers import multiprocess_dir

logger = structlog.get_logger(__name__)


class Ledger(Protocol):
    context: str

    def status(self) -> list[SubscriberStatus]: ...


class DeliveryBacklog(Collector):
    """What waits per subscriber, read from the outboxes this process serves at each scrape:
    ``shop_event_backlog{subscriber, state}`` (pending, retrying, dead) and the age of the
    oldest delivery not yet made (the subscriber's lag). ``subscribers``, those the ledgers
    deliver to, are reported at 0 while nothing waits for them, so that their series do not come
    and go. A database that does not answer leaves its subscribers out of that scrape (the
    readiness check says why)."""

    def __init__(self, ledgers: Sequence[Ledger], subscribers: Sequence[str]) -> None:
        self._ledgers = ledgers
        self._subscribers = subscribers

    def describe(self) -> Iterator[Metric]:
        """What :meth:`collect` yields, without reading anything (registering asks for it)."""
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        backlog, oldest = self._families()
        now = datetime.now(timezone.utc)
        statuses, complete = self._statuses()
        waiting: dict[str, list[int]] = {name: [0, 0, 0] for name in self._subscribers} if complete else {}
        since: dict[str, datetime] = {}
        for status in statuses:  # a subscriber may take the events of several outboxes
            counts = waiting.setdefault(status.subscriber, [0, 0, 0])
            counts[0] += status.pending
            counts[1] += status.retrying
            counts[2] += status.dead
            if status.oldest_waiting is not None:
                since[status.subscriber] = min(since.get(status.subscriber, now), status.oldest_waiting)
        for subscriber, (pending, retrying, dead) in waiting.items():
            backlog.add_metric([subscriber, "pending"], pending)
            backlog.add_metric([subscriber, "retrying"], retrying)
            backlog.add_metric([subscriber, "dead"], dead)
            oldest.add_metric([subscriber], (now - since[subscriber]).total_seconds() if subscriber in since else 0.0)
        yield backlog
        yield oldest

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        backlog = GaugeMetricFamily(
            "shop_event_backlog",
            "Deliveries not made yet per subscriber: pending (never tried), retrying, dead (dead letters)",
            labels=["subscriber", "state"],
        )
        oldest = GaugeMetricFamily(
            "shop_event_backlog_oldest_seconds",
            "Age of the oldest delivery a subscriber has not had yet, dead letters left out (its lag)",
            labels=["subscriber"],
        )
        return backlog, oldest

    def _statuses(self) -> tuple[list[SubscriberStatus], bool]:
        """What the ledgers say, and whether every one of them could say it."""
        statuses: list[SubscriberStatus] = []
        complete = True
        for ledger in self._ledgers:
            try:
                statuses.extend(ledger.status())
            except Exception as error:  # noqa: BLE001 - a scrape reports what it can read
                logger.warning("metrics.backlog_unreadable", context=ledger.context, error=repr(error))
                complete = False
        return statuses, complete


def metrics_blueprint(metrics: Metrics, at_scrape: Sequence[Collector], token: str | None) -> Blueprint:
    """The ``/metrics`` endpoint; with ``token``, only for a request bearing it. Off the public
    API: the documentation is built from the public blueprints only."""
    bp = Blueprint("metrics", __name__)
    expected = token.encode() if token else None
    registry = _registry_to_scrape(metrics, at_scrape)

    @bp.get("/metrics")
    def scrape() -> Response:
        if expected is not None and not presents(expected):
            raise Problem(
                401,
                "the metrics are served to the bearer of METRICS_TOKEN only",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        # The text format Prometheus asks for (OpenMetrics when it says so), as its client does.
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encode(registry), content_type=content_type)

    return bp


def _registry_to_scrape(metrics: Metrics, at_scrape: Sequence[Collector]) -> CollectorRegistry:
    """The app's own registry; or, under several workers, one reading every worker's files."""
    path = multiprocess_dir()
    if path is None:
        assert metrics.registry is not None, "an app's metrics have a registry"
        registry = metrics.registry
    else:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    for collector in at_scrape:
        registry.register(collector)
    return registry
