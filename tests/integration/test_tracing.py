"""Traces in one process, read from the SDK's in-memory exporter: the request's span, the use
cases' under it, SQL under those, and each delivery of the events it recorded in its trace.

(Two processes exporting over OTLP: tests/e2e/test_tracing_across_services.py.)"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import select

import app.containers
from app.containers import ApplicationContainer, databases
from app.factory import container_of
from contexts.order.adapters.orm import OUTBOX as ORDER_OUTBOX
from contexts.order.events import OrderPlaced
from contexts.product.application.handlers import ExpireReservations
from infrastructure.events.delivery import Delivery
from infrastructure.logging import configure_logging
from infrastructure.observability.tracing import TracedUseCase, traceparent_to_pass_on
from tests.conftest import MakeApp, Shop

ORDERS = "/api/v1/orders"
OFFERED_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Every app made from now on traces into this exporter, as OTEL_* would have it trace."""
    exporter = InMemorySpanExporter()

    def provider(_service_name: str) -> TracerProvider:
        made = TracerProvider(shutdown_on_exit=False)
        made.add_span_processor(SimpleSpanProcessor(exporter))
        return made

    monkeypatch.setattr(app.containers, "tracer_provider_from_env", provider)
    return exporter


@pytest.fixture
def traced(spans: InMemorySpanExporter, make_app: MakeApp) -> Iterator[Flask]:
    yield make_app()


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name == name]


def only(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, (name, sorted({span.name for span in spans.get_finished_spans()}))
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def recorded_envelope(container: ApplicationContainer, order_id: object) -> dict[str, Any]:
    """The envelope of the order's OrderPlaced, as its outbox stored it."""
    outbox = ORDER_OUTBOX.outbox
    query = select(outbox.c.envelope).where(outbox.c.event_type == "order.OrderPlaced")
    with databases(container)["order"].begin() as connection:
        (envelope,) = [
            row.envelope for row in connection.execute(query) if row.envelope["data"]["order_id"] == order_id
        ]
    return dict(envelope)


def place_an_order(shop: Shop, **headers: str) -> dict[str, object]:
    product = shop.product(shop.admin(), initial_stock=5)
    order: dict[str, object] = shop.placed(shop.customer(), product, **headers)
    return order


def test_an_order_is_one_trace_from_its_request_to_each_of_its_deliveries(
    traced: Flask, spans: InMemorySpanExporter
) -> None:
    container = container_of(traced)
    shop = Shop(traced.test_client(), container)
    place_an_order(shop)
    container.dispatcher().run_until_idle()

    request = only(spans, f"POST {ORDERS}")
    assert request.kind == SpanKind.SERVER
    assert request.attributes is not None and request.attributes["http.route"] == ORDERS
    trace_id = request.context.trace_id

    place = only(spans, "order.PlaceOrder")
    assert parent_of(place) == request.context.span_id, "the use case is the request's child"
    assert place.attributes == {"shop.context": "order", "shop.use_case": "PlaceOrder"}
    children = [span for span in spans.get_finished_spans() if parent_of(span) == place.context.span_id]
    assert [span for span in children if span.kind == SpanKind.CLIENT], "its statements nest under it"
    reserve = only(spans, "product.ReserveStock")
    assert reserve in children, "the product context's use case, called in process, is the order's child"
    assert reserve.attributes == {"shop.context": "product", "shop.use_case": "ReserveStock"}

    for subscriber in ("notification.order_confirmation_email", "product.confirm_reservation", "audit.order_log"):
        (delivery,) = [
            span
            for span in named(spans, f"deliver {subscriber}")
            if span.attributes is not None and span.attributes["shop.event_type"] == "order.OrderPlaced"
        ]
        assert delivery.kind == SpanKind.CONSUMER
        assert delivery.context.trace_id == trace_id, f"{subscriber} is in the order's trace"
        assert parent_of(delivery) == place.context.span_id, "under the use case that recorded the event"
        assert [link.context.span_id for link in delivery.links] == [place.context.span_id]
        assert delivery.attributes["shop.context"] == subscriber.split(".")[0]
        assert delivery.attributes["shop.attempt"] == 1


def test_a_retried_delivery_stays_in_the_trace_of_the_request_that_recorded_its_event(
    traced: Flask, spans: InMemorySpanExporter
) -> None:
    container = container_of(traced)
    attempts: list[int] = []

    def flaky(_event: OrderPlaced, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if len(attempts) == 1:
            raise RuntimeError("down, once")

    container.event_bus().subscribe(OrderPlaced, flaky, name="test.flaky")
    place_an_order(Shop(traced.test_client(), container))
    container.dispatcher().run_until_idle()
    for outbox in container.dispatcher().outboxes:
        outbox.ledger.hasten("test.flaky")
    container.dispatcher().run_until_idle()

    assert attempts == [1, 2]
    request = only(spans, f"POST {ORDERS}")
    deliveries = named(spans, "deliver test.flaky")
    assert [span.attributes["shop.attempt"] for span in deliveries if span.attributes] == [1, 2]
    assert {span.context.trace_id for span in deliveries} == {request.context.trace_id}
    assert not deliveries[0].status.is_ok, "the failed attempt's span says so"


def test_a_callers_traceparent_is_continued_and_recorded_with_the_events(
    traced: Flask, spans: InMemorySpanExporter
) -> None:
    container = container_of(traced)
    shop = Shop(traced.test_client(), container)
    order = place_an_order(shop, traceparent=f"00-{OFFERED_TRACE}-00f067aa0ba902b7-01")

    request = only(spans, f"POST {ORDERS}")
    assert format(request.context.trace_id, "032x") == OFFERED_TRACE
    envelope = recorded_envelope(container, order["id"])
    assert envelope["trace"]["traceparent"].split("-")[1] == OFFERED_TRACE


def test_log_lines_carry_the_ids_of_the_span_under_way(traced: Flask, spans: InMemorySpanExporter) -> None:
    lines = io.StringIO()
    configure_logging(level="INFO", log_format="json", stream=lines)
    traced.test_client().get("/api/v1/products")
    (logged,) = [json.loads(line) for line in lines.getvalue().splitlines() if '"event": "request"' in line]
    span = only(spans, "GET /api/v1/products")
    assert logged["trace_id"] == format(span.context.trace_id, "032x")
    assert logged["span_id"] == format(span.context.span_id, "016x")


def test_the_operational_endpoints_and_housekeeping_make_no_spans(traced: Flask, spans: InMemorySpanExporter) -> None:
    client = traced.test_client()
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200
    container_of(traced).product.expire_reservations()(ExpireReservations())  # a use case outside any trace
    assert spans.get_finished_spans() == ()

    assert client.get("/api/v1/products", query_string={"q": "/metrics"}).status_code == 200
    assert only(spans, "GET /api/v1/products"), "only those paths are left out, not a query naming one"


def test_a_use_cases_own_errors_are_outcomes_and_other_errors_are_span_errors(
    traced: Flask, spans: InMemorySpanExporter
) -> None:
    shop = Shop(traced.test_client(), container_of(traced))
    product = shop.product(shop.admin(), initial_stock=1)
    refused = shop.order(shop.customer(), product, 5)
    assert refused.status_code == 409
    place = only(spans, "order.PlaceOrder")
    assert place.status.status_code is StatusCode.UNSET and not place.events, "a 409 is no failure of the span"

    class BrokenHandler:
        def __call__(self, _command: object) -> None:
            raise RuntimeError("a bug")

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("a request"), pytest.raises(RuntimeError):
        TracedUseCase(BrokenHandler(), "order", provider)(object())
    broken = only(exporter, "order.Broken")
    assert broken.status.status_code is StatusCode.ERROR
    assert [event.name for event in broken.events] == ["exception"]


def test_off_nothing_is_traced_and_a_callers_traceparent_is_passed_on(make_app: MakeApp, tmp_path: Path) -> None:
    traced_app = make_app()
    container = container_of(traced_app)
    passed_on: list[str | None] = []
    container.event_bus().subscribe(
        OrderPlaced, lambda _event, _delivery: passed_on.append(traceparent_to_pass_on()), name="test.watcher"
    )
    assert container.tracing() is None
    assert not isinstance(container.order.place_order(), TracedUseCase)
    shop = Shop(traced_app.test_client(), container)
    offered = f"00-{uuid.uuid4().hex}-00f067aa0ba902b7-01"
    order = place_an_order(shop, traceparent=offered)
    envelope = recorded_envelope(container, order["id"])
    assert envelope["trace"]["traceparent"] == offered
    container.dispatcher().run_until_idle()
    assert passed_on == [offered], "a delivery passes the trace on to what it records and calls"
