"""Idempotency-Key on POST /orders (API.md): a repeat replays the first answer, a reuse with
another body is 422, a key in flight is 409, a stale claim is taken over, a failure frees the
key, and malformed keys are 400."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.containers import ApplicationContainer
from contexts.order.application.handlers import IDEMPOTENCY_LEASE, PlaceOrder
from contexts.order.domain.model import Item
from tests.conftest import Shop

ORDERS = "/api/v1/orders"
PROBLEM_JSON = "application/problem+json"

Headers = dict[str, str]


def place(client: FlaskClient, headers: Headers, items: list[dict[str, Any]], key: str) -> TestResponse:
    return client.post(ORDERS, json={"items": items}, headers={**headers, "Idempotency-Key": key})


def stock_of(client: FlaskClient, product: dict[str, Any]) -> int:
    stock: int = client.get(f"/api/v1/products/{product['id']}").json["stock"]
    return stock


def order_ids(client: FlaskClient, headers: Headers) -> list[str]:
    return [order["id"] for order in client.get(ORDERS, headers=headers).json["items"]]


def claim_in_flight(
    container: ApplicationContainer, user_id: uuid.UUID, key: str, items: list[dict[str, Any]], now: datetime
) -> None:
    """Leave a claim behind as a request still being processed (or one that died) would."""
    command = PlaceOrder(
        user_id=user_id,
        items=tuple(Item(uuid.UUID(item["product_id"]), item["quantity"]) for item in items),
        idempotency_key=key,
    )
    with container.order.uow() as uow:
        uow.idempotency.claim(user_id=user_id, key=key, fingerprint=command.fingerprint(), now=now)
        uow.commit()


def user_id_of(client: FlaskClient, headers: Headers) -> uuid.UUID:
    return uuid.UUID(client.get("/api/v1/users/me", headers=headers).json["id"])


def test_the_same_key_and_body_replays_the_first_answer(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, price="4.00", initial_stock=10)
    customer = shop.customer()
    items = [{"product_id": product["id"], "quantity": 3}]

    first = place(client, customer, items, "order-1")
    second = place(client, customer, items, "order-1")

    assert first.status_code == second.status_code == 201, (first.json, second.json)
    assert second.json == first.json
    assert second.headers["Location"] == first.headers["Location"]
    assert order_ids(client, customer) == [first.json["id"]]
    assert stock_of(client, product) == 7


def test_a_replay_after_a_cancel_answers_the_original_body(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)
    customer = shop.customer()
    items = [{"product_id": product["id"], "quantity": 2}]
    first = place(client, customer, items, "cancel-then-retry")
    cancelled = client.post(f"{ORDERS}/{first.json['id']}/cancel", headers=customer)
    assert cancelled.json["status"] == "cancelled"

    replay = place(client, customer, items, "cancel-then-retry")

    assert replay.status_code == 201
    assert replay.json == first.json
    assert replay.json["status"] == "placed"
    assert order_ids(client, customer) == [first.json["id"]]
    assert stock_of(client, product) == 10


def test_the_same_key_with_another_body_is_422(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)
    other = shop.product(admin, initial_stock=10)
    customer = shop.customer()
    first = place(client, customer, [{"product_id": product["id"], "quantity": 1}], "reused")

    more = place(client, customer, [{"product_id": product["id"], "quantity": 2}], "reused")
    elsewhere = place(client, customer, [{"product_id": other["id"], "quantity": 1}], "reused")

    for response in (more, elsewhere):
        assert response.status_code == 422, response.json
        assert response.mimetype == PROBLEM_JSON
    assert order_ids(client, customer) == [first.json["id"]]
    assert (stock_of(client, product), stock_of(client, other)) == (9, 10)


def test_the_same_key_from_another_user_is_independent(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)
    alice, bob = shop.customer(), shop.customer()
    items = [{"product_id": product["id"], "quantity": 1}]

    hers = place(client, alice, items, "shared-key")
    his = place(client, bob, items, "shared-key")

    assert hers.status_code == his.status_code == 201
    assert hers.json["id"] != his.json["id"]
    assert his.json["user_id"] == str(user_id_of(client, bob))
    assert order_ids(client, bob) == [his.json["id"]]
    assert stock_of(client, product) == 8


def test_a_key_still_in_flight_is_409(client: FlaskClient, shop: Shop, container: ApplicationContainer) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)
    customer = shop.customer()
    items = [{"product_id": product["id"], "quantity": 1}]
    claim_in_flight(container, user_id_of(client, customer), "busy", items, now=datetime.now(timezone.utc))

    response = place(client, customer, items, "busy")
    again = place(client, customer, items, "busy")

    assert response.status_code == again.status_code == 409, response.json
    assert response.mimetype == PROBLEM_JSON
    assert order_ids(client, customer) == []
    assert stock_of(client, product) == 10
    assert place(client, customer, items, "another key").status_code == 201


def test_a_stale_claim_is_taken_over(client: FlaskClient, shop: Shop, container: ApplicationContainer) -> None:
    """A claim whose lease ran out belongs to a request that died; the retry may go ahead."""
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)
    customer = shop.customer()
    items = [{"product_id": product["id"], "quantity": 1}]
    long_ago = datetime.now(timezone.utc) - IDEMPOTENCY_LEASE - timedelta(seconds=5)
    claim_in_flight(container, user_id_of(client, customer), "orphan", items, now=long_ago)

    response = place(client, customer, items, "orphan")
    replay = place(client, customer, items, "orphan")

    assert response.status_code == 201, response.json
    assert replay.status_code == 201
    assert replay.json == response.json
    assert order_ids(client, customer) == [response.json["id"]]
    assert stock_of(client, product) == 9


def test_a_failed_request_frees_its_key(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=1)
    customer = shop.customer()
    items = [{"product_id": product["id"], "quantity": 2}]

    refused = place(client, customer, items, "try-again")
    assert refused.status_code == 409, refused.json
    restocked = client.post(f"/api/v1/products/{product['id']}/stock-adjustments", json={"delta": 5}, headers=admin)
    assert restocked.status_code == 200
    retried = place(client, customer, items, "try-again")

    assert retried.status_code == 201, retried.json
    assert order_ids(client, customer) == [retried.json["id"]]
    assert stock_of(client, product) == 4


def test_a_request_with_an_unknown_product_frees_its_key(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=5)
    customer = shop.customer()
    unknown = [{"product_id": str(uuid.uuid4()), "quantity": 1}]

    assert place(client, customer, unknown, "k").status_code == 400
    # Not in flight (409) and not bound to the failed body (422): free for a new request.
    retried = place(client, customer, [{"product_id": product["id"], "quantity": 1}], "k")

    assert retried.status_code == 201, retried.json


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "bell\x07", "tab\tkey", "\x7f"],
    ids=["empty", "256-chars", "control-char", "tab", "delete"],
)
def test_invalid_keys_are_400(client: FlaskClient, shop: Shop, key: str) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=5)
    customer = shop.customer()

    response = place(client, customer, [{"product_id": product["id"], "quantity": 1}], key)

    assert response.status_code == 400, response.json
    assert response.mimetype == PROBLEM_JSON
    assert [error["field"] for error in response.json["errors"]] == ["Idempotency-Key"]
    assert order_ids(client, customer) == []
    assert stock_of(client, product) == 5


@pytest.mark.parametrize("key", ["k", "k" * 255, "~!@#$%^&*()_+ 0aZ"], ids=["1-char", "255-chars", "symbols"])
def test_keys_of_1_to_255_printable_characters_are_accepted(client: FlaskClient, shop: Shop, key: str) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=5)
    customer = shop.customer()
    items = [{"product_id": product["id"], "quantity": 1}]

    first = place(client, customer, items, key)
    replay = place(client, customer, items, key)

    assert first.status_code == replay.status_code == 201, first.json
    assert replay.json == first.json
    assert stock_of(client, product) == 4
