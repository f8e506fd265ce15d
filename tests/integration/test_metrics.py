"""``GET /metrics`` after a scripted scenario: the values, not just the names, in one process.

(Several gunicorn workers: tests/e2e/test_metrics_workers.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from app.containers import ApplicationContainer, databases
from app.factory import container_of
from contexts.user.events import UserRegistered
from infrastructure.errors import DependencyUnavailable
from infrastructure.events.delivery import Delivery
from tests.conftest import Backend, MakeApp, Shop, start_app, stop_app
from tests.http_servers import dead_url

ORDER_ROUTE = "/api/v1/orders"
PRODUCT_ROUTE = "/api/v1/products/<product_id>"


def scrape(client: FlaskClient, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and labels."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def place_and_cancel_an_order(shop: Shop, container: ApplicationContainer) -> tuple[dict[str, str], str]:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=5)
    customer = shop.customer()
    placed = shop.order(customer, product, 2)
    assert placed.status_code == 201, placed.json
    refused = shop.order(customer, product, 99)
    assert refused.status_code == 409, refused.json
    cancelled = shop.client.post(f"{ORDER_ROUTE}/{placed.json['id']}/cancel", headers=customer)
    assert cancelled.status_code == 200, cancelled.json
    container.dispatcher().run_until_idle()
    return customer, product["id"]


def test_a_scripted_scenario_shows_in_the_metrics(shop: Shop, container: ApplicationContainer) -> None:
    place_and_cancel_an_order(shop, container)
    wrong = shop.client.post("/api/v1/auth/token", json={"email": "nobody@example.com", "password": "wrong pass"})
    assert wrong.status_code == 401
    assert shop.client.get(f"/api/v1/products/{uuid.uuid4()}").status_code == 404
    assert shop.client.get("/wp-login.php").status_code == 404

    samples = scrape(shop.client)

    requests = "shop_http_requests_total"
    assert value(samples, requests, method="POST", route=ORDER_ROUTE, status="201") == 1
    assert value(samples, requests, method="POST", route=ORDER_ROUTE, status="409") == 1
    assert value(samples, requests, method="POST", route=f"{ORDER_ROUTE}/<order_id>/cancel", status="200") == 1
    assert value(samples, requests, method="POST", route="/api/v1/auth/token", status="401") == 1
    assert value(samples, requests, method="GET", route=PRODUCT_ROUTE, status="404") == 1
    # A scanner's path is no label value.
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1
    assert not any("wp-login" in str(labels) for _, labels in samples)
    assert value(samples, "shop_http_request_duration_seconds_count", method="POST", route=ORDER_ROUTE) == 2

    # The order context's calls to product's published interface, in process.
    calls = "shop_api_calls_total"
    assert value(samples, calls, context="product", operation="reserve_priced", outcome="ok") >= 1
    assert value(samples, calls, context="product", operation="reserve_priced", outcome="error") >= 1
    reserve_timings = value(
        samples,
        "shop_api_call_duration_seconds_count",
        context="product",
        operation="reserve_priced",
        transport="in_process",
    )
    reserve_calls = sum(
        value(samples, calls, context="product", operation="reserve_priced", outcome=outcome)
        for outcome in ("ok", "error", "unavailable")
    )
    assert reserve_timings == reserve_calls >= 2
    assert value(samples, calls, context="product", operation="release", outcome="ok") == 1  # the cancellation

    recorded = "shop_events_recorded_total"
    assert value(samples, recorded, event_type="order.OrderPlaced") == 1
    assert value(samples, recorded, event_type="order.OrderCancelled") == 1
    assert value(samples, recorded, event_type="user.UserRegistered") == 2  # the admin and the customer

    deliveries = "shop_event_deliveries_total"
    assert value(samples, deliveries, subscriber="notification.order_confirmation_email", outcome="done") == 2
    assert value(samples, deliveries, subscriber="product.release_cancelled_order", outcome="done") == 1
    assert value(samples, deliveries, subscriber="product.release_cancelled_order", outcome="failed") == 0
    assert (
        value(samples, "shop_event_delivery_duration_seconds_count", subscriber="product.release_cancelled_order") == 1
    )

    # Everything delivered: nothing waits.
    backlog = {labels: v for (name, labels), v in samples.items() if name == "shop_event_backlog"}
    assert backlog and all(v == 0 for v in backlog.values()), backlog
    assert value(samples, "shop_ready") == 1
    assert value(samples, "shop_dependency_ready", dependency="database:order") == 1


def test_the_backlog_and_the_lag_show_deliveries_not_made_yet(shop: Shop, container: ApplicationContainer) -> None:
    shop.customer()  # UserRegistered: its deliveries wait, nobody runs the dispatcher
    samples = scrape(shop.client)
    waiting = [labels for (name, labels), v in samples.items() if name == "shop_event_backlog" and v == 1]
    assert ("state", "pending") in {item for labels in waiting for item in labels}
    lags = [v for (name, _), v in samples.items() if name == "shop_event_backlog_oldest_seconds"]
    assert lags and max(lags) > 0

    container.dispatcher().run_until_idle()
    after = scrape(shop.client)
    assert all(v == 0 for (name, _), v in after.items() if name == "shop_event_backlog_oldest_seconds")


def test_a_failing_subscriber_is_counted_failed_then_dead(make_app: MakeApp) -> None:
    app = make_app(events_max_attempts=3)
    container = container_of(app)

    def broken(_event: UserRegistered, _delivery: Delivery) -> None:
        raise RuntimeError("down")

    container.event_bus().subscribe(UserRegistered, broken, name="test.broken")
    Shop(app.test_client(), container).customer()
    for _ in range(3):  # each failed attempt made due again at once
        container.dispatcher().run_until_idle()
        for outbox in container.dispatcher().outboxes:
            outbox.ledger.hasten("test.broken")

    samples = scrape(app.test_client())
    assert value(samples, "shop_event_deliveries_total", subscriber="test.broken", outcome="failed") == 2
    assert value(samples, "shop_event_deliveries_total", subscriber="test.broken", outcome="dead") == 1
    assert value(samples, "shop_event_delivery_duration_seconds_count", subscriber="test.broken") == 3
    assert value(samples, "shop_event_backlog", subscriber="test.broken", state="dead") == 1
    assert value(samples, "shop_event_backlog_oldest_seconds", subscriber="test.broken") == 0, "a dead letter is no lag"


@pytest.fixture
def metrics_app(tmp_path: Path, backend: Backend) -> Iterator[Flask]:
    app = start_app(tmp_path, METRICS_TOKEN="m" * 32)
    yield app
    stop_app(app)


def test_with_a_token_the_metrics_answer_its_bearer_only(metrics_app: Flask) -> None:
    client = metrics_app.test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.content_type == "application/problem+json"
    assert "METRICS_TOKEN" in refused.json["detail"]
    assert client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 32}).status_code == 401
    assert scrape(client, Authorization="Bearer " + "m" * 32)


def test_metrics_can_be_switched_off(tmp_path: Path, backend: Backend) -> None:
    app = start_app(tmp_path, METRICS_ENABLED=False)
    try:
        assert app.test_client().get("/metrics").status_code == 404
    finally:
        stop_app(app)


def test_the_metrics_are_not_in_the_public_api_document(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 200
    assert "/metrics" not in client.get("/openapi.json").json["paths"]


def pooled_in_use(client: FlaskClient) -> float:
    return sum(v for (name, _), v in scrape(client).items() if name == "shop_db_pool_connections_in_use")


def test_the_pools_connections_in_use_come_and_go(client: FlaskClient, container: ApplicationContainer) -> None:
    idle = pooled_in_use(client)
    database = databases(container)["order"]
    with database.begin():
        assert pooled_in_use(client) == idle + 1
    assert pooled_in_use(client) == idle
    sizes = {labels: v for (name, labels), v in scrape(client).items() if name == "shop_db_pool_size"}
    assert sizes and all(v > 0 for v in sizes.values())


def test_a_call_to_a_service_that_does_not_answer_is_unavailable_retried_and_opens_its_breaker(
    make_app: MakeApp,
) -> None:
    url = dead_url()
    app = make_app(
        product_service_url=url,
        service_token="metrics-test-service-token-0123456789",
        token_secret="metrics-test-signing-secret-0123456789abcdef",
        remote_attempts=2,
        remote_breaker_failures=2,
    )
    products = container_of(app).product_api()
    for _ in range(2):
        with pytest.raises(DependencyUnavailable):
            products.get_products([uuid.uuid4()])
    samples = scrape(app.test_client())
    calls = "shop_api_calls_total"
    assert value(samples, calls, context="product", operation="get_products", outcome="unavailable") == 2
    assert value(samples, calls, context="product", operation="get_products", outcome="ok") == 0
    timed = value(
        samples, "shop_api_call_duration_seconds_count", context="product", operation="get_products", transport="http"
    )
    assert timed == 2
    assert value(samples, "shop_remote_retries_total", target=url) == 1, "the first call's second attempt"
    assert value(samples, "shop_remote_breaker_state", target=url) == 2, "open after two failures"


def test_a_call_that_fails_with_no_error_of_its_interface_is_counted_failed(
    container: ApplicationContainer, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    products = container.product_api()
    monkeypatch.setattr(products.inner, "get_products", broken)
    with pytest.raises(RuntimeError):
        products.get_products([uuid.uuid4()])
    samples = scrape(client)
    assert value(samples, "shop_api_calls_total", context="product", operation="get_products", outcome="failed") == 1
    assert value(samples, "shop_api_calls_total", context="product", operation="get_products", outcome="error") == 0


def test_throttled_logins_are_counted_by_their_limit(make_app: MakeApp) -> None:
    app = make_app(login_rate_limit_per_account="1/minute")
    client = app.test_client()
    credentials = {"email": "someone@example.com", "password": "wrong password"}
    assert client.post("/api/v1/auth/token", json=credentials).status_code == 401
    assert client.post("/api/v1/auth/token", json=credentials).status_code == 429
    samples = scrape(client)
    assert value(samples, "shop_rate_limited_requests_total", limit="login-per-account") == 1
    assert value(samples, "shop_rate_limited_requests_total", limit="login-per-address") == 0


def test_a_delivery_run_again_is_counted_repeated_not_done(shop: Shop, container: ApplicationContainer) -> None:
    shop.customer()
    outbox = next(outbox for outbox in container.dispatcher().outboxes if outbox.context == "user")
    (claimed,) = [
        delivery
        for delivery in outbox.queue.claim(100, owner="test", lease=timedelta(seconds=60))
        if delivery.subscriber == "notification.recipients"
    ]
    runner = container.dispatcher().runner
    assert runner.run_delivery(outbox, claimed)
    assert runner.run_delivery(outbox, claimed), "its inbox refuses it: a success with no effect"
    samples = scrape(shop.client)
    deliveries = "shop_event_deliveries_total"
    assert value(samples, deliveries, subscriber="notification.recipients", outcome="done") == 1
    assert value(samples, deliveries, subscriber="notification.recipients", outcome="repeated") == 1
