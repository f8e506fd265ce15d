"""Configuration moves the product context out of process: with PRODUCT_SERVICE_URL set, the
order and recommendation contexts get the remote client, calls carry the request's context, and
a product service that does not answer makes placing an order a 503 that leaves nothing behind.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import pytest
from flask import Flask
from pydantic import ValidationError
from sqlalchemy import text

from app.config import read_settings, settings_problems
from app.factory import container_of
from app.ops import ServiceCheck
from contexts.product.application.handlers import CreateProduct
from contexts.product.client import INTERNAL_PREFIX, RemoteProductApi
from infrastructure.auth.tokens import TokenKeys
from infrastructure.remote.options import ACCESS_SUFFIX
from infrastructure.request_context import bind_deadline
from tests.conftest import MakeApp, Shop, database_for
from tests.http_servers import Answer, ScriptedServer, SilentServer, dead_url, serve_app
from tests.problems import assert_problem

SERVICE_TOKEN = "remote-product-test-token-0123456789abc"
# What a process calling the product service needs: the service token and the signing secret
# the product service shares.
REMOTE = {"service_token": SERVICE_TOKEN, "token_secret": "remote-product-test-signing-secret-0123456789"}
# Two processes serving the contexts apart also need the broker's URL (never connected to here).
APART = {"events_broker_url": "amqp://guest:guest@127.0.0.1:5672//", **REMOTE}
# The product service checks customers' tokens at the user service (never called here: these
# tests only call its internal endpoints, which take the service token).
PRODUCT_APART = {**APART, "user_service_url": "http://127.0.0.1:9"}
ALL_BUT_PRODUCT = "user,order,notification,audit,recommendation"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ORDER_TABLES = ("order_orders", "order_order_lines", "order_idempotency_keys")


def problems_of(**settings: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        read_settings(settings)
    return settings_problems(raised.value)


# --- settings -------------------------------------------------------------------------------


def test_a_product_service_url_needs_a_service_token() -> None:
    assert "SERVICE_TOKEN: required when PRODUCT_SERVICE_URL is set" in problems_of(
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
    settings = read_settings({"product_service_url": "https://shop.internal/product/", **REMOTE})
    assert settings.product_service_url == "https://shop.internal/product"


def remote_product_api(app: Flask) -> RemoteProductApi:
    api = container_of(app).product_api().inner
    assert isinstance(api, RemoteProductApi)
    return api


# --- the container's choice ----------------------------------------------------------------


def test_without_a_product_service_url_the_product_context_is_called_in_process(make_app: MakeApp) -> None:
    container = container_of(make_app())
    assert container.product_api().inner is container.product.api()
    assert container.order.product_api() is container.product_api()
    assert container.recommendation.product_api() is container.product_api()


def test_with_a_product_service_url_order_and_recommendation_get_the_remote_client(make_app: MakeApp) -> None:
    container = container_of(make_app(product_service_url=dead_url(), **REMOTE))
    remote = container.product_api()
    assert isinstance(remote.inner, RemoteProductApi)
    assert container.order.product_api() is remote
    assert container.recommendation.product_api() is remote


def test_the_breakers_are_each_apps_own(make_app: MakeApp) -> None:
    """ARCHITECTURE.md rule 7: the breakers are the application container's, not a module's, so
    one app's open breaker does not refuse another app's calls to the same URL. (That an app
    calling nothing remotely makes none, nor imports the HTTP client, is test_startup_imports'.)"""
    url = dead_url()
    settings = {"product_service_url": url, **REMOTE, "remote_attempts": 1, "remote_breaker_failures": 1}
    tripped = make_app(**settings)
    client = tripped.test_client()
    customer = Shop(client, container_of(tripped)).customer()
    body = {"items": [{"product_id": "7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e", "quantity": 1}]}
    assert_problem(client.post("/api/v1/orders", json=body, headers=customer), 503)
    other = make_app(**settings)  # built after the call: the views are wired to the last app built

    def state(app: Flask) -> str:
        return str(container_of(app).breakers().breaker_for(url, failures=1, reset_seconds=10).state)

    assert (state(tripped), state(other)) == ("open", "closed")


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
        **REMOTE,
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
        app = make_app(product_service_url=product_service.url, **REMOTE)
        client = app.test_client()
        customer = Shop(client, container_of(app)).customer()
        client.post(
            "/api/v1/orders",
            json={"items": [{"product_id": "7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e", "quantity": 1}]},
            headers={**customer, "X-Request-ID": "order-req-1", "traceparent": TRACEPARENT},
        )
        remote_product_api(app).close()

    # One call reserves and prices the order; its answer lacks the product, so the reservation
    # is released again.
    reservation, release = product_service.received
    assert reservation.method == "PUT"
    assert reservation.path.startswith("/internal/v1/product/priced-reservations/")
    assert json.loads(reservation.body) == {
        "lines": [{"product_id": "7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e", "quantity": 1}]
    }
    assert (release.method, release.path) == ("POST", reservation.path.replace("priced-", "") + "/release")
    for call in (reservation, release):
        assert call.headers["Authorization"] == f"Bearer {SERVICE_TOKEN}"
        assert call.headers["X-Request-ID"] == "order-req-1"
        assert call.headers["traceparent"] == TRACEPARENT
    assert 0 < int(reservation.headers["X-Deadline-Ms"]) <= 5000  # REMOTE_READ_TIMEOUT_SECONDS


class SlowService:
    """A healthy service that takes ``seconds`` over every answer, and notes the deadline each
    request carried: slower than a customer's short deadline, well within the read timeout."""

    def __init__(self, app: WSGIApplication, seconds: float) -> None:
        self._app = app
        self._seconds = seconds
        self.deadlines: list[int] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        self.deadlines.append(int(environ.get("HTTP_X_DEADLINE_MS", "0")))
        time.sleep(self._seconds)
        return self._app(environ, start_response)


def test_a_customers_deadline_neither_shortens_the_calls_nor_opens_the_breaker(make_app: MakeApp) -> None:
    """Customers sending a tiny ``X-Deadline-Ms`` used to time the product calls out on purpose
    and open the breaker for everyone; from the public edge the header is not believed."""
    product_app = make_app(served_contexts="product", **PRODUCT_APART)
    product_id = (
        container_of(product_app)
        .product.create_product()(
            CreateProduct(
                sku="SLOW-1", name="Thing", description=None, price=Decimal("10.00"), currency="USD", initial_stock=10
            )
        )
        .id
    )
    slow = SlowService(product_app, seconds=0.2)
    with serve_app(slow) as product_url:
        app = make_app(
            served_contexts=ALL_BUT_PRODUCT,
            product_service_url=product_url,
            remote_read_timeout_seconds=5,
            remote_breaker_failures=2,
            **APART,
        )
        client = app.test_client()
        customer = Shop(client, container_of(app)).customer()
        answers = [
            client.post(
                "/api/v1/orders",
                json={"items": [{"product_id": str(product_id), "quantity": 1}]},
                headers={**customer, "X-Deadline-Ms": "20", "Idempotency-Key": f"short-{attempt}"},
            )
            for attempt in range(3)
        ]
        breaker = container_of(app).breakers().breaker_for(product_url, failures=2, reset_seconds=10).state
        remote_product_api(app).close()

    assert [answer.status_code for answer in answers] == [201, 201, 201], answers[0].json
    assert breaker == "closed"
    assert slow.deadlines and min(slow.deadlines) > 1000, slow.deadlines


def test_a_service_may_shorten_the_deadline_of_the_calls_its_request_makes(make_app: MakeApp) -> None:
    """The deadline of a caller presenting the service token is believed and passed on."""
    with ScriptedServer(then=Answer(200, {"items": []})) as product_service:
        app = make_app(product_service_url=product_service.url, **REMOTE)
        client = app.test_client()
        customer = Shop(client, container_of(app)).customer()
        client.post(
            "/api/v1/orders",
            json={"items": [{"product_id": "7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e", "quantity": 1}]},
            headers={**customer, "X-Deadline-Ms": "1500"},
        )
        with app.test_request_context(headers={"Authorization": f"Bearer {SERVICE_TOKEN}", "X-Deadline-Ms": "1500"}):
            app.preprocess_request()
            container_of(app).product_api().get_products([uuid.UUID("7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e")])
            app.do_teardown_request()
        remote_product_api(app).close()

    # The order's reservation (its release follows it: the scripted answer prices nothing), then
    # the service's own call.
    calls = product_service.received
    from_customer, from_service = (int(received.headers["X-Deadline-Ms"]) for received in (calls[0], calls[-1]))
    assert from_customer > 1500
    assert 0 < from_service <= 1500


def test_a_release_is_made_even_when_the_callers_deadline_is_spent(make_app: MakeApp) -> None:
    """Releasing undoes a reservation, typically after a failure that used up the caller's time."""
    with ScriptedServer(then=Answer(204)) as product_service:
        app = make_app(product_service_url=product_service.url, **REMOTE)
        api = remote_product_api(app)
        bind_deadline(-1.0)
        try:
            api.release(uuid.UUID("7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e"), "order_not_placed")
        finally:
            bind_deadline(None)
            api.close()

    [release] = product_service.received
    assert release.path == "/internal/v1/product/reservations/7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e/release"


# --- a misconfigured pair of services -------------------------------------------------------


def order_service(make_app: MakeApp, product_url: str, **settings: Any) -> Flask:
    return make_app(served_contexts=ALL_BUT_PRODUCT, product_service_url=product_url, **{**APART, **settings})


def test_a_product_service_that_refuses_our_service_token_is_a_503_naming_the_misconfiguration(
    make_app: MakeApp,
) -> None:
    product_app = make_app(
        served_contexts="product", **{**PRODUCT_APART, "service_token": "another-service-token-" + "x" * 20}
    )
    with serve_app(product_app) as product_url:
        app = order_service(make_app, product_url)
        client = app.test_client()
        customer = Shop(client, container_of(app)).customer()
        ordered = client.post(
            "/api/v1/orders",
            json={"items": [{"product_id": "7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e", "quantity": 1}]},
            headers=customer,
        )
        ready = client.get("/readyz")
        remote_product_api(app).close()

    problem = assert_problem(ordered, 503)
    assert "SERVICE_TOKEN" in problem["detail"]
    assert ordered.headers["Retry-After"].isdigit()
    readiness = assert_problem(ready, 503)
    assert "the product service cannot be used" in readiness["detail"]
    assert "SERVICE_TOKEN" in readiness["detail"]
    assert readiness["services"] == {"product": "misconfigured"}


def test_readiness_names_a_product_service_url_that_leads_to_no_internal_endpoints(make_app: MakeApp) -> None:
    """Say, the URL of the monolith, which has no SERVICE_TOKEN and so no internal endpoints: a 404."""
    with serve_app(make_app()) as product_url:
        app = order_service(make_app, product_url)
        ready = app.test_client().get("/readyz")
        remote_product_api(app).close()

    readiness = assert_problem(ready, 503)
    assert "PRODUCT_SERVICE_URL does not lead to a product service" in readiness["detail"]


def test_readiness_names_services_that_sign_customers_tokens_with_different_secrets(make_app: MakeApp) -> None:
    """Each would answer 401 to every customer whose token the other signed."""
    other_secret = {"token_secret": "another-signing-secret-" + "y" * 20}
    with serve_app(make_app(served_contexts="product", **{**PRODUCT_APART, **other_secret})) as product_url:
        app = order_service(make_app, product_url)
        ready = app.test_client().get("/readyz")
        remote_product_api(app).close()

    readiness = assert_problem(ready, 503)
    assert "another TOKEN_SECRET" in readiness["detail"]
    assert readiness["services"] == {"product": "misconfigured"}


def test_readiness_holds_while_a_token_secret_is_rotated_one_service_at_a_time(make_app: MakeApp) -> None:
    new_secret = "the-new-signing-secret-" + "z" * 20
    rotated = {"token_secret": new_secret, "token_previous_secrets": APART["token_secret"]}
    with serve_app(make_app(served_contexts="product", **{**PRODUCT_APART, **rotated})) as product_url:
        app = order_service(make_app, product_url)  # still on the old secret alone
        assert app.test_client().get("/readyz").status_code == 200
        remote_product_api(app).close()


def test_readiness_checks_the_product_service_takes_our_calls_but_does_not_fall_with_it(make_app: MakeApp) -> None:
    with serve_app(make_app(served_contexts="product", **PRODUCT_APART)) as product_url:
        app = order_service(make_app, product_url)
        assert app.test_client().get("/readyz").status_code == 200
        remote_product_api(app).close()

    down = order_service(make_app, dead_url(), remote_attempts=1)
    assert down.test_client().get("/readyz").status_code == 200, "a product outage is no reason to stop the rest"
    remote_product_api(down).close()


@pytest.mark.parametrize(
    "answer", [Answer(500, {"detail": "boom"}), Answer(200, ["not", "the", "key", "ids"])], ids=["500", "unreadable"]
)
def test_a_product_service_that_fails_the_access_check_does_not_make_readiness_fail(
    make_app: MakeApp, answer: Answer
) -> None:
    """A failing service is unavailable, not a misconfiguration; before, /readyz answered 500."""
    with ScriptedServer(then=answer) as product_service:
        app = order_service(make_app, product_service.url)
        ready = app.test_client().get("/readyz")
        remote_product_api(app).close()

    assert ready.status_code == 200, ready.get_data(as_text=True)[:500]


def test_readiness_keeps_the_product_services_answer_and_asks_it_within_the_connect_timeout(
    make_app: MakeApp,
) -> None:
    """An orchestrator's probes, every second from every process, would each have been a call,
    each waiting up to the read timeout for a product service that hangs."""
    with ScriptedServer(then=Answer(404, {"detail": "no such path"})) as product_service:
        app = order_service(make_app, product_service.url, remote_connect_timeout_seconds=1)
        client = app.test_client()
        probes = [client.get("/readyz") for _ in range(3)]
        remote_product_api(app).close()

    for probe in probes:
        assert assert_problem(probe, 503)["services"] == {"product": "misconfigured"}
    [access] = product_service.received
    assert access.path == INTERNAL_PREFIX + ACCESS_SUFFIX
    assert 0 < int(access.headers["X-Deadline-Ms"]) <= 1000


def test_a_probe_cut_short_by_its_own_budget_does_not_open_the_breaker(make_app: MakeApp) -> None:
    """A product service slower than the probe's budget but within the read timeout still
    serves the calls that may wait: the probe's timeouts are not counted as its failures."""
    with SilentServer() as hanging:
        app = order_service(make_app, hanging.url, remote_breaker_failures=1)
        ready = app.test_client().get("/readyz")
        breaker = container_of(app).breakers().breaker_for(hanging.url, failures=1, reset_seconds=10).state
        remote_product_api(app).close()

    assert ready.status_code == 200
    assert hanging.accepted == 1
    assert breaker == "closed"


class CountedAccessCheck:
    def __init__(self) -> None:
        self.calls = 0

    def check_access(self, tokens: TokenKeys) -> None:
        self.calls += 1


def test_a_kept_answer_is_asked_again_once_it_is_old_or_the_token_keys_change() -> None:
    now = [100.0]
    client = CountedAccessCheck()
    check = ServiceCheck("product", client, keep_seconds=5, clock=lambda: now[0])
    ours = TokenKeys("k1", frozenset({"k1"}))

    states = [check.state(ours)]
    now[0] += 4.9
    states.append(check.state(ours))
    assert client.calls == 1
    now[0] += 0.2
    states.append(check.state(ours))
    assert client.calls == 2
    states.append(check.state(TokenKeys("k2", frozenset({"k2", "k1"}))))
    assert client.calls == 3
    assert states == [("ok", None)] * 4


def test_an_order_through_a_product_service_url_without_internal_endpoints_is_a_503_naming_it(
    make_app: MakeApp,
) -> None:
    """Say, the monolith's URL: every path of its own is a 404 without a published code, which
    used to be an unexpected answer, a 500 for every order."""
    with serve_app(make_app()) as product_url:
        app = order_service(make_app, product_url)
        client = app.test_client()
        customer = Shop(client, container_of(app)).customer()
        ordered = client.post(
            "/api/v1/orders",
            json={"items": [{"product_id": "7d7ac1d8-86bd-4c8b-8a3f-0b8b1b1f5d6e", "quantity": 1}]},
            headers=customer,
        )
        remote_product_api(app).close()

    problem = assert_problem(ordered, 503)
    assert "PRODUCT_SERVICE_URL does not lead to a product service" in problem["detail"]
    assert ordered.headers["Retry-After"].isdigit()
