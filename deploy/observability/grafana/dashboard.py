"""Writes ``shop-dashboard.json``, the shop's Grafana dashboard: ``python deploy/observability/grafana/dashboard.py``.

Generated rather than edited in Grafana: six context rows built alike stay alike, and the JSON
stays reviewable. Edit this file and run it again; ``tests/deploy/test_observability_config.py``
checks that the JSON is what this writes, that every expression is valid PromQL over metrics the
shop exposes, and that each context's row selects exactly that context's routes.

Standard library only: the operator's machine needs Python, not the shop. The datasource is a
variable (``$datasource``), as is the process (``$service``: the scrape configurations' label),
so the one file serves every topology.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("shop-dashboard.json")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SERVICE = 'service=~"$service"'
RATE = "$__rate_interval"
WIDTH = 24
PANEL_WIDTH = 8
PANEL_HEIGHT = 8

Panel = dict[str, Any]


@dataclass(frozen=True)
class ContextRow:
    """What one context shows: its routes, the interface others call, its events, its subscribers.

    ``routes``: a regular expression of its public route templates (Prometheus anchors it), and
    one of the templates under them that belong to another context (RE2 has no lookahead).
    ``internal``: it serves other processes at ``/internal/v1/<name>/…`` when it runs apart.
    """

    name: str
    routes: str | None = None
    routes_not: str | None = None
    internal: bool = False
    api: bool = False  # other contexts call its published interface
    publishes: bool = False
    subscribes: bool = False
    extra: tuple[Panel, ...] = field(default=())


def _prefix(context: str) -> str:
    """A regular expression of the names ``<context>.…`` (event types, subscribers)."""
    return context + r"\\..+"


def target(expr: str, legend: str) -> dict[str, Any]:
    return {"expr": expr, "legendFormat": legend}


def timeseries(title: str, description: str, unit: str, *targets: dict[str, Any], stack: bool = False) -> Panel:
    custom: dict[str, Any] = {"fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": list(targets),
    }


def stat(title: str, description: str, *targets: dict[str, Any], mappings: list[dict[str, Any]] | None = None) -> Panel:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {
                "mappings": mappings or [],
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}],
                },
                "unit": "none",
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "background",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value_and_name",
        },
        "targets": list(targets),
    }


UP_DOWN = [{"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}]
READY = [
    {"type": "value", "options": {"0": {"text": "not ready", "color": "red"}, "1": {"text": "ready", "color": "green"}}}
]
BREAKER = [
    {
        "type": "value",
        "options": {
            "0": {"text": "closed", "color": "green"},
            "1": {"text": "half-open", "color": "orange"},
            "2": {"text": "open", "color": "red"},
        },
    }
]


# --- what any set of requests, calls, events shows, under a selector -----------------------


def http_panels(selector: str, where: str) -> list[Panel]:
    return [
        timeseries(
            f"Requests by route and status{where}",
            "Requests answered per second, by route template and status (the internal endpoints other"
            " processes call included).",
            "reqps",
            target(
                f"sum by (route, status) (rate(shop_http_requests_total{{{selector}}}[{RATE}]))",
                "{{route}} {{status}}",
            ),
        ),
        timeseries(
            f"5xx share by route{where}",
            "Share of the requests answered with a 5xx status (alert ShopHighErrorRate: over 5% for 5 minutes).",
            "percentunit",
            target(
                f'sum by (route) (rate(shop_http_requests_total{{{selector},status=~"5.."}}[{RATE}]))'
                f" / sum by (route) (rate(shop_http_requests_total{{{selector}}}[{RATE}]))",
                "{{route}}",
            ),
        ),
        timeseries(
            f"Latency by route{where}",
            "p50 and p99 of the time to answer, by route (alert ShopHighLatency: p99 over 1 s for 10 minutes).",
            "s",
            target(
                "histogram_quantile(0.99, sum by (route, le)"
                f" (rate(shop_http_request_duration_seconds_bucket{{{selector}}}[{RATE}])))",
                "p99 {{route}}",
            ),
            target(
                "histogram_quantile(0.5, sum by (route, le)"
                f" (rate(shop_http_request_duration_seconds_bucket{{{selector}}}[{RATE}])))",
                "p50 {{route}}",
            ),
        ),
    ]


def api_panels(context: str) -> list[Panel]:
    selector = f'{SERVICE},context="{context}"'
    return [
        timeseries(
            f"{context} interface calls by operation and outcome",
            f"Calls to the {context} context's published interface, in process or over HTTP, by whoever calls it:"
            " ok, error (one of the interface's own errors), unavailable.",
            "ops",
            target(
                f"sum by (operation, outcome) (rate(shop_api_calls_total{{{selector}}}[{RATE}]))",
                "{{operation}} {{outcome}}",
            ),
        ),
        timeseries(
            f"{context} interface p99 by operation",
            f"99th percentile of the calls to the {context} context's interface, in process or over HTTP.",
            "s",
            target(
                "histogram_quantile(0.99, sum by (operation, transport, le)"
                f" (rate(shop_api_call_duration_seconds_bucket{{{selector}}}[{RATE}])))",
                "{{operation}} ({{transport}})",
            ),
        ),
    ]


def recorded_panel(selector: str, where: str) -> Panel:
    return timeseries(
        f"Events recorded{where}",
        "Events committed to an outbox per interval, by type (orders placed: order.OrderPlaced, cancelled:"
        " order.OrderCancelled, registrations: user.UserRegistered).",
        "short",
        target(
            f"sum by (event_type) (increase(shop_events_recorded_total{{{selector}}}[{RATE}]))",
            "{{event_type}}",
        ),
    )


def delivery_panels(selector: str, queue_selector: str, where: str) -> list[Panel]:
    return [
        timeseries(
            f"Deliveries by subscriber and outcome{where}",
            "Deliveries of events to subscribers per second: done, failed (to be tried again), dead (a dead letter).",
            "ops",
            target(
                f"sum by (subscriber, outcome) (rate(shop_event_deliveries_total{{{selector}}}[{RATE}]))",
                "{{subscriber}} {{outcome}}",
            ),
        ),
        timeseries(
            f"Delivery p99 by subscriber{where}",
            "99th percentile of the time a subscriber takes over one delivery, failed ones included.",
            "s",
            target(
                "histogram_quantile(0.99, sum by (subscriber, le)"
                f" (rate(shop_event_delivery_duration_seconds_bucket{{{selector}}}[{RATE}])))",
                "{{subscriber}}",
            ),
        ),
        timeseries(
            f"Backlog by subscriber{where}",
            "Deliveries not made yet, read from the outboxes at each scrape: pending, retrying, dead (alert"
            " ShopEventDeadLetters). The max over a service's hosts: they read the same outbox.",
            "short",
            target(
                f"max by (subscriber, state) (shop_event_backlog{{{selector}}})",
                "{{subscriber}} {{state}}",
            ),
        ),
        timeseries(
            f"Subscriber lag{where}",
            "Age of the oldest delivery a subscriber has not had yet, dead letters left out (alert"
            " ShopSubscriberLagging: over 5 minutes for 5 minutes).",
            "s",
            target(
                f"max by (subscriber) (shop_event_backlog_oldest_seconds{{{selector}}})",
                "{{subscriber}}",
            ),
        ),
        timeseries(
            f"Broker messages consumed{where}",
            "Messages the subscribers' consumers took from their broker queues (contexts served apart), by how"
            " they were settled: acked, retried (parked in the retry queue), dead_lettered"
            " (alert ShopBrokerDeadLetters).",
            "ops",
            target(
                f"sum by (queue, outcome) (rate(shop_broker_consumed_total{{{queue_selector}}}[{RATE}]))",
                "{{queue}} {{outcome}}",
            ),
        ),
    ]


# --- the rows ------------------------------------------------------------------------------

CONTEXT_ROWS = (
    ContextRow(
        "user",
        routes="/api/v1/(users|auth|admin/users)(/.*)?",
        routes_not="/api/v1/users/me/recommendations(/.*)?",
        internal=True,
        api=True,
        publishes=True,
        extra=(
            timeseries(
                "Requests refused by rate limits",
                "429s per second by the limit broken: login_per_account, login_per_address, registration_per_address.",
                "reqps",
                target(f"sum by (limit) (rate(shop_rate_limited_requests_total{{{SERVICE}}}[{RATE}]))", "{{limit}}"),
            ),
        ),
    ),
    ContextRow(
        "product",
        routes="/api/v1/products(/.*)?",
        internal=True,
        api=True,
        publishes=True,
        subscribes=True,
        extra=(
            timeseries(
                "Reservations expired",
                "Reservations no placed order confirmed within RESERVATION_TTL_SECONDS, released by housekeeping.",
                "short",
                target(
                    f'sum(increase(shop_periodic_handled_total{{{SERVICE},task="reservations_expired"}}[{RATE}]))',
                    "expired",
                ),
            ),
        ),
    ),
    ContextRow("order", routes="/api/v1/(orders|admin/orders)(/.*)?", publishes=True),
    ContextRow("notification", subscribes=True),
    ContextRow("audit", routes="/api/v1/audit-log(/.*)?", subscribes=True),
    ContextRow("recommendation", routes="/api/v1/users/me/recommendations(/.*)?", subscribes=True),
)


def context_panels(row: ContextRow) -> list[Panel]:
    where = f" ({row.name})"
    panels: list[Panel] = []
    if row.routes is not None:
        routes = f"{row.routes}|/internal/v1/{row.name}(/.*)?" if row.internal else row.routes
        selector = f'{SERVICE},route=~"{routes}"'
        if row.routes_not is not None:
            selector += f',route!~"{row.routes_not}"'
        panels += http_panels(selector, where)
    if row.api:
        panels += api_panels(row.name)
    if row.publishes:
        panels.append(recorded_panel(f'{SERVICE},event_type=~"{_prefix(row.name)}"', where))
    if row.subscribes:
        subscribers = f'{SERVICE},subscriber=~"{_prefix(row.name)}"'
        # A subscriber's queue is <EVENTS_BROKER_QUEUE_PREFIX>.<subscriber>.
        queues = f'{SERVICE},queue=~"(.+\\\\.)?{_prefix(row.name)}"'
        panels += delivery_panels(subscribers, queues, where)
    panels += row.extra
    return panels


def overview_panels() -> list[Panel]:
    return [
        stat(
            "Ready",
            "shop_ready: the checks of /readyz, per process (alert ShopNotReady).",
            target(f"shop_ready{{{SERVICE}}}", "{{service}} {{instance}}"),
            mappings=READY,
        ),
        stat(
            "Scraped",
            "up: whether Prometheus reached each process's /metrics (alert ShopTargetDown).",
            target(f'up{{job=~"shop-.*",{SERVICE}}}', "{{service}} {{instance}}"),
            mappings=UP_DOWN,
        ),
        stat(
            "Dependencies ready",
            "shop_dependency_ready: what each process depends on, as /readyz finds it (alert ShopDependencyNotReady).",
            target(f"shop_dependency_ready{{{SERVICE}}}", "{{service}}: {{dependency}}"),
            mappings=READY,
        ),
        timeseries(
            "Requests by process",
            "Requests answered per second by each process, by status.",
            "reqps",
            target(
                f"sum by (service, status) (rate(shop_http_requests_total{{{SERVICE}}}[{RATE}]))",
                "{{service}} {{status}}",
            ),
            stack=True,
        ),
        timeseries(
            "Unmatched requests",
            'Requests to no route (route="unmatched"): 404s and 405s, by status. A rise is a client or a'
            " gateway calling what is not there.",
            "reqps",
            target(
                f'sum by (status) (rate(shop_http_requests_total{{{SERVICE},route="unmatched"}}[{RATE}]))',
                "{{status}}",
            ),
        ),
    ]


def events_panels() -> list[Panel]:
    everything = SERVICE
    return [
        recorded_panel(everything, ""),
        timeseries(
            "Broker: events published",
            "Events the relay published to the broker, confirmed, by type (contexts served apart).",
            "ops",
            target(
                f"sum by (event_type) (rate(shop_broker_published_total{{{everything}}}[{RATE}]))",
                "{{event_type}}",
            ),
        ),
        timeseries(
            "Broker: messages redelivered",
            "Messages that came back to a subscriber's queue after a failed attempt.",
            "ops",
            target(
                f"sum by (queue) (rate(shop_broker_redelivered_total{{{everything}}}[{RATE}]))",
                "{{queue}}",
            ),
        ),
        *delivery_panels(everything, everything, ""),
    ]


def pool_panels() -> list[Panel]:
    by = "by (service, instance, pool)"
    return [
        timeseries(
            "Connections in use",
            "Connections checked out of each pool (all of a process's workers), against the pool's size.",
            "short",
            target(f"sum {by} (shop_db_pool_connections_in_use{{{SERVICE}}})", "in use {{service}} {{pool}}"),
            target(f"sum {by} (shop_db_pool_size{{{SERVICE}}})", "size {{service}} {{pool}}"),
        ),
        timeseries(
            "Pool saturation",
            "In use against the pool's size and its overflow connections (alert ShopDatabasePoolSaturated: over"
            " 90% for 5 minutes).",
            "percentunit",
            target(
                f"sum {by} (shop_db_pool_connections_in_use{{{SERVICE}}}) / sum {by}"
                f" (shop_db_pool_size{{{SERVICE}}} + clamp_min(shop_db_pool_overflow_connections{{{SERVICE}}}, 0))",
                "{{service}} {{instance}} {{pool}}",
            ),
        ),
        timeseries(
            "Overflow connections",
            "Connections open beyond the pool's size (up to DATABASE_MAX_OVERFLOW): each is closed when returned,"
            " so a steady overflow means a pool smaller than the load (README, Production, step 9).",
            "short",
            target(
                f"sum {by} (clamp_min(shop_db_pool_overflow_connections{{{SERVICE}}}, 0))",
                "{{service}} {{instance}} {{pool}}",
            ),
        ),
    ]


def remote_panels() -> list[Panel]:
    http = f'{SERVICE},transport="http"'
    return [
        timeseries(
            "Calls over HTTP by context and operation",
            "Calls to a published interface served by another process, per second.",
            "ops",
            target(
                f"sum by (service, context, operation) (rate(shop_api_call_duration_seconds_count{{{http}}}[{RATE}]))",
                "{{service}} → {{context}}.{{operation}}",
            ),
        ),
        timeseries(
            "Calls over HTTP: p99",
            "99th percentile of the calls to another process's interface, retries and waits included.",
            "s",
            target(
                "histogram_quantile(0.99, sum by (service, context, operation, le)"
                f" (rate(shop_api_call_duration_seconds_bucket{{{http}}}[{RATE}])))",
                "{{service}} → {{context}}.{{operation}}",
            ),
        ),
        timeseries(
            "Interface calls not ok",
            "Calls to a published interface that ended in one of its errors or found it unavailable (503s"
            " to the callers).",
            "ops",
            target(
                f'sum by (service, context, outcome) (rate(shop_api_calls_total{{{SERVICE},outcome!="ok"}}[{RATE}]))',
                "{{service}} → {{context}} {{outcome}}",
            ),
        ),
        timeseries(
            "Retries by target",
            "Calls to another service tried again after a failed attempt.",
            "ops",
            target(
                f"sum by (service, target) (rate(shop_remote_retries_total{{{SERVICE}}}[{RATE}]))",
                "{{service}} → {{target}}",
            ),
        ),
        stat(
            "Circuit breakers",
            "Each process's breaker per service it calls (alert ShopCircuitBreakerOpen).",
            target(f"max by (service, target) (shop_remote_breaker_state{{{SERVICE}}})", "{{service}} → {{target}}"),
            mappings=BREAKER,
        ),
    ]


def rows() -> Iterator[tuple[str, list[Panel]]]:
    yield "Overview", overview_panels()
    yield "HTTP", http_panels(SERVICE, "")
    for row in CONTEXT_ROWS:
        yield f"Context: {row.name}", context_panels(row)
    yield "Events and broker", events_panels()
    yield "Database pools", pool_panels()
    yield "Remote calls", remote_panels()


def laid_out() -> list[Panel]:
    """Every row's panels, three across, each row a Grafana row panel above them."""
    panels: list[Panel] = []
    y = 0
    for title, contents in rows():
        panels.append(
            {"type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y}}
        )
        y += 1
        for index, built in enumerate(contents):
            panel = copy.deepcopy(built)
            x = (index % (WIDTH // PANEL_WIDTH)) * PANEL_WIDTH
            if index and x == 0:
                y += PANEL_HEIGHT
            panel["gridPos"] = {"h": PANEL_HEIGHT, "w": PANEL_WIDTH, "x": x, "y": y}
            for ref, panel_target in zip("ABCDEFGH", panel.get("targets", []), strict=False):
                panel_target.update(refId=ref, datasource=DATASOURCE)
            panels.append(panel)
        y += PANEL_HEIGHT
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
        if panel["type"] == "row":
            panel["panels"] = []
    return panels


def dashboard() -> dict[str, Any]:
    services = 'label_values(up{job=~"shop-.*"}, service)'
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "modular-shop: requests, published-interface calls, events, pools and remote calls,"
        " a row per context (deploy/observability/README.md).",
        "editable": True,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": laid_out(),
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["modular-shop"],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "options": [],
                    "refresh": 1,
                    "regex": "",
                },
                {
                    "name": "service",
                    "label": "Process",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "definition": services,
                    "query": {"query": services, "refId": "service"},
                    "current": {},
                    "hide": 0,
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "options": [],
                    "refresh": 2,
                    "regex": "",
                    "sort": 1,
                },
            ]
        },
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": "modular-shop",
        "uid": "modular-shop",
        "version": 1,
    }


def rendered() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(rendered(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUTPUT}\n")
