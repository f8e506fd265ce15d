"""Configuration moves the product context out of process: with PRODUCT_SERVICE_URL set, the
order and recommendation contexts get the remote client, calls carry the request's context, and
a product service that does not answer makes placing an order a 503 that leaves nothing behind.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from app.config import read_settings, settings_problems
from app.factory import container_of
from contexts.product.client import RemoteProductApi
from infrastructure.request_context import bind_deadline
from tests.conftest import MakeApp, Shop, database_for
from tests.http_servers import Answer, ScriptedServer, dead_url
from tests.problems import assert_problem

SERVICE_TOKEN = "remote-product-test-token-0123456789abc"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ORDER_TABLES = ("order_orders", "order_order_lines", "order_idempotency_keys")


def problems_of(**settings: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        read_settings(settings)
    return settings_problems(raised.value)


# --- settings -------------------------------------------------------------------------------


def test_a_product_service_url_needs_a_service_token() -> None:
    assert "SERVICE_TOKEN: Value error, required when PRODUCT_SERVICE_URL is set" in problems_of(
        product_service_url="http://product:8000"
    )


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"service_token": "too-short"}, "SERVICE_TOKEN"),
        ({"product_service_url": "ftp://product", "service_token": SERVICE_TOKEN}, "PRODUCT_SERVICE_URL"),
        ({"product_service_url": "http://", "service_token": SERVICE_TOKEN}, "PRODUCT_SERVICE_URL"),
        ({"product_service_url": "http://u:p@product", "service_token": SERVICE_TOKEN}, "PRODUCT_SERVICE_URL"),
        ({"remote_attempts": 0}, "REMOTE_ATTEMPTS"),
        ({"remote_connect_timeout_seconds": 0}, "REMOTE_CONNECT_TIMEOUT_SECONDS"),
        ({"remote_read_timeout_seconds": 301}, "REMOTE_READ_TIMEOUT_SECONDS"),
        ({"remote_breaker_failures": 0}, "REMOTE_BREAKER_FAILURES"),
        ({"remote_breaker_reset_seconds": -1}, "REMOTE_BREAKER_RESET_SECONDS"),
    ],
)
def test_bad_remote_settings_are_refused_by_name(settings: dict[str, Any], named: str) -> None:
    problems = problems_of(**settings)
    assert problems.strip().startswith(f"{named}:"), problems
    assert "u:p" not in problems


def test_the_service_url_is_kept_without_a_trailing_slash() -> None:
    settings = read_settings({"product_service_url": "https://shop.internal/product/", "service_token": SERVICE_TOKEN})
    assert settings.product_service_url == "https://shop.internal/product"


# --- the container's choice ----------------------------------------------------------------


def test_without_a_product_service_url_the_product_context_is_called_in_process(make_app: MakeApp) -> None:
    container = container_of(make_app())
    assert container.product_api() is container.product.api()
    assert container.order.product_api() is container.product.api()
    assert container.recommendation.product_api() is container.product.api()


def test_with_a_product_service_url_order_and_recommendation_get_the_remote_client(make_app: MakeApp) -> None:
    container = container_of(make_app(product_service_url=dead_url(), service_token=SERVICE_TOKEN))
    remote = container.product_api()
    assert isinstance(remote, RemoteProductApi)
    assert container.order.product_api() is remote
    assert container.recommendation.product_api() is remote


# --- placing an order through a remote product context --------------------------------------


def order_rows(instance: Path) -> dict[str, int]:
    database = database_for("order", instance)
    try:
        with database.begin() as connection:
            return {
                table: connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() for table in ORDER_TABLES
            }
    finally:
        database.dispose()


def test_an_order_while_the_product_service_is_down_is_a_503_that_leaves_nothing_behind(
    make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app(
        product_service_url=dead_url(),
        service_token=SERVICE_TOKEN,
        remote_attempts=2,
        remote_breaker_failures=4,
        remote_breaker_reset_seconds=30,
    )
    client = app.test_client()
    customer = Shop(client, container_of(app)).customer()
    body = {"items": [{"product_id": "7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e", "quantity": 1}]}

    # Refused connections (counted by the breaker), then an open breaker: 503 every time.
    for attempt in range(4):
        response = client.post("/api/v1/orders", json=body, headers={**customer, "Idempotency-Key": f"k{attempt}"})
        problem = assert_problem(response, 503)
        assert response.headers["Retry-After"].isdigit(), attempt
        assert problem["detail"] == "the product service is unavailable; try again shortly"

    assert order_rows(tmp_path / "instance-0") == dict.fromkeys(ORDER_TABLES, 0)


def test_the_request_id_trace_and_remaining_deadline_reach_the_product_service(make_app: MakeApp) -> None:
    with ScriptedServer(then=Answer(200, {"items": []})) as product_service:
        app = make_app(product_service_url=product_service.url, service_token=SERVICE_TOKEN)
        client = app.test_client()
        customer = Shop(client, container_of(app)).customer()
        client.post(
            "/api/v1/orders",
            json={"items": [{"product_id": "7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e", "quantity": 1}]},
            headers={**customer, "X-Request-ID": "order-req-1", "traceparent": TRACEPARENT, "X-Deadline-Ms": "1500"},
        )
        container_of(app).product_api().close()

    [lookup] = product_service.received
    assert lookup.method == "GET"
    assert lookup.path == "/internal/v1/product/products?ids=7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e"
    assert lookup.headers["Authorization"] == f"Bearer {SERVICE_TOKEN}"
    assert lookup.headers["X-Request-ID"] == "order-req-1"
    assert lookup.headers["traceparent"] == TRACEPARENT
    assert 0 < int(lookup.headers["X-Deadline-Ms"]) <= 1500


def test_a_release_is_made_even_when_the_callers_deadline_is_spent(make_app: MakeApp) -> None:
    """Releasing undoes a reservation, typically after a failure that used up the caller's time."""
    with ScriptedServer(then=Answer(204)) as product_service:
        app = make_app(product_service_url=product_service.url, service_token=SERVICE_TOKEN)
        api = container_of(app).product_api()
        bind_deadline(-1.0)
        try:
            api.release(uuid.UUID("7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e"), "order_not_placed")
        finally:
            bind_deadline(None)
            api.close()

    [release] = product_service.received
    assert release.path == "/internal/v1/product/reservations/7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e/release"
