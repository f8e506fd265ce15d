"""One order's trace across two processes, exported over OTLP (HTTP, protobuf) to a receiver in
the test: the product context served apart, the order placed at the other process, its
reservation answered by the product service, its effects delivered in both."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.conftest import Backend, amqp_url_or_skip
from tests.e2e.server import API, REQUEST_TIMEOUT, bearer, register
from tests.e2e.topology import ADMIN_EMAIL, ADMIN_PASSWORD, running_topology, wait_until
from tests.http_servers import serve_app

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("rabbitmq")]

PRODUCT_SERVICE = "modular-shop-product"
REST_SERVICE = "modular-shop-user-order-notification-audit-recommendation"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str


class Receiver:
    """An OTLP/HTTP trace receiver: what the exporters send to ``/v1/traces``."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self._lock:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    self._spans.extend(
                        ReceivedSpan(attributes.get("service.name", ""), span.name, span.trace_id.hex())
                        for span in scope_spans.spans
                    )
        start_response("200 OK", [("Content-Type", "application/x-protobuf")])
        return [ExportTraceServiceResponse().SerializeToString()]

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    received = Receiver()
    with serve_app(received) as url:
        yield received, url


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_one_orders_spans_from_two_processes_share_its_trace(
    backend: Backend, tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    received, url = receiver
    settings = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    with (
        running_topology(
            "product_extracted", tmp_path, amqp_url=amqp_url_or_skip(), settings=settings, migrated_by="the test"
        ) as topology,
        httpx.Client(base_url=topology.url, timeout=REQUEST_TIMEOUT) as client,
    ):
        admin = bearer(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        product = client.post(
            f"{API}/products",
            json={"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "Mug", "price": "5.00", "initial_stock": 3},
            headers=admin,
        )
        assert product.status_code == 201, product.text
        customer = register(client, f"{uuid.uuid4().hex[:10]}@example.com", "correct horse")
        placed = client.post(
            f"{API}/orders", json={"items": [{"product_id": product.json()["id"], "quantity": 1}]}, headers=customer
        )
        assert placed.status_code == 201, placed.text

        def the_order_trace() -> set[tuple[str, str]]:
            spans = received.spans()
            requests = [s for s in spans if s.service == REST_SERVICE and s.name == f"POST {API}/orders"]
            if not requests:
                return set()
            return {(s.service, s.name) for s in spans if s.trace_id == requests[0].trace_id}

        expected = {
            (REST_SERVICE, f"POST {API}/orders"),
            (REST_SERVICE, "order.PlaceOrder"),
            (PRODUCT_SERVICE, "product.ReserveStock"),  # the internal call, answered apart
            (REST_SERVICE, "deliver notification.order_confirmation_email"),
            (REST_SERVICE, "deliver broker.relay"),  # OrderPlaced on its way to the product service
            (PRODUCT_SERVICE, "deliver product.confirm_reservation"),  # and taken from the broker there
        }
        wait_until(
            lambda: expected <= the_order_trace(),
            lambda: f"missing from the order's trace: {sorted(expected - the_order_trace())}",
            timeout=60,
        )
        processes = {service for service, _ in the_order_trace()}
        assert processes == {REST_SERVICE, PRODUCT_SERVICE}
