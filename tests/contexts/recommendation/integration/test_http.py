"""GET /api/v1/users/me/recommendations over the real app and SQLite: customers order through
the API, the events are delivered, and another customer who bought product A is offered what was
bought together with A first, then popular products; never A, never more than ten, described by
the catalog as it is now; the same after every event is delivered again; 401 without a token."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text

from app.containers import ApplicationContainer, databases
from contexts.recommendation.adapters.orm import RecommendationBase
from tests.conftest import Shop
from tests.problems import assert_problem

RECOMMENDATIONS = "/api/v1/users/me/recommendations"
ITEM_FIELDS = {"product_id", "sku", "name", "price", "currency", "score", "reason"}

Headers = dict[str, str]


def place(client: FlaskClient, headers: Headers, *products: dict[str, Any]) -> str:
    items = [{"product_id": product["id"], "quantity": 1} for product in products]
    response = client.post("/api/v1/orders", json={"items": items}, headers=headers)
    assert response.status_code == 201, response.json
    order_id: str = response.json["id"]
    return order_id


def cancel(client: FlaskClient, headers: Headers, order_id: str) -> None:
    response = client.post(f"/api/v1/orders/{order_id}/cancel", headers=headers)
    assert response.status_code == 200, response.json


def recommendations(client: FlaskClient, headers: Headers) -> list[dict[str, Any]]:
    response = client.get(RECOMMENDATIONS, headers=headers)
    body = response.json
    assert response.status_code == 200 and body is not None, body
    assert set(body) == {"items"}
    items: list[dict[str, Any]] = body["items"]
    return items


def user_id_of(client: FlaskClient, headers: Headers) -> uuid.UUID:
    body = client.get("/api/v1/users/me", headers=headers).json
    assert body is not None
    return uuid.UUID(body["id"])


def snapshot(container: ApplicationContainer) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of the context's tables, inbox aside (redelivery may only add to that)."""
    database = databases(container)["recommendation"]
    with database.engine.connect() as connection:
        return {
            name: {tuple(row) for row in connection.execute(select(table))}
            for name, table in RecommendationBase.metadata.tables.items()
            if name != "recommendation_inbox"
        }


def recommendation_deliveries(container: ApplicationContainer, *, set_status: str | None = None) -> list[str]:
    """The statuses of every delivery to a recommendation subscriber; with ``set_status``, make
    them all that status and due first (as a crash before their completion was recorded would)."""
    statuses: list[str] = []
    for name in ("user", "order"):
        with databases(container)[name].begin() as connection:
            if set_status is not None:
                connection.execute(
                    text(
                        f"UPDATE {name}_deliveries SET status = :status, claimed_until = NULL, completed_at = NULL "
                        "WHERE subscriber LIKE 'recommendation.%'"
                    ),
                    {"status": set_status},
                )
            statuses += connection.execute(
                text(f"SELECT status FROM {name}_deliveries WHERE subscriber LIKE 'recommendation.%'")
            ).scalars()
    return statuses


@pytest.fixture
def admin(shop: Shop) -> Headers:
    return shop.admin()


def test_a_buyer_of_a_is_offered_what_was_bought_with_a_first_then_popular_products(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, admin: Headers
) -> None:
    a, b, c, d, e = (shop.product(admin, name=f"Thing {name}", price=f"{n}.25") for n, name in enumerate("ABCDE", 1))
    first, second, third = shop.customer(), shop.customer(), shop.customer()
    place(client, first, a, b)
    place(client, second, a, b, d)
    place(client, third, a, c)
    place(client, third, d)
    place(client, first, e)
    me = shop.customer()
    place(client, me, a)

    assert container.dispatcher().run_until_idle() > 0
    items = recommendations(client, me)

    assert [item["product_id"] for item in items] == [b["id"], d["id"], c["id"], e["id"]]
    assert [(item["score"], item["reason"]) for item in items] == [
        (2, "bought_together"),
        (1, "bought_together"),
        (1, "bought_together"),
        (0, "popular"),
    ]
    # d and c tie on score; d is in two orders, c in one.
    assert items[0] == {
        "product_id": b["id"],
        "sku": b["sku"],
        "name": "Thing B",
        "price": "2.25",
        "currency": "USD",
        "score": 2,
        "reason": "bought_together",
    }
    assert all(set(item) == ITEM_FIELDS for item in items)


def test_never_the_product_bought_and_never_more_than_ten(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, admin: Headers
) -> None:
    a = shop.product(admin)
    others = [shop.product(admin) for _ in range(13)]
    place(client, shop.customer(), a, *others)
    me = shop.customer()
    place(client, me, a)
    container.dispatcher().run_until_idle()

    items = recommendations(client, me)

    # Thirteen candidates, all with score 1 and in one order: the ten smallest ids.
    expected = sorted((uuid.UUID(product["id"]) for product in others))[:10]
    assert [uuid.UUID(item["product_id"]) for item in items] == expected
    assert a["id"] not in {item["product_id"] for item in items}


def test_a_customer_without_orders_gets_the_popular_products_or_nothing(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, admin: Headers
) -> None:
    newcomer = shop.customer()
    container.dispatcher().run_until_idle()
    assert recommendations(client, newcomer) == []

    once, twice = shop.product(admin), shop.product(admin)
    buyer = shop.customer()
    place(client, buyer, twice)
    place(client, buyer, twice, once)
    container.dispatcher().run_until_idle()

    assert [(item["product_id"], item["score"], item["reason"]) for item in recommendations(client, newcomer)] == [
        (twice["id"], 0, "popular"),
        (once["id"], 0, "popular"),
    ]


def test_orders_placed_and_cancelled_make_no_product_popular(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, admin: Headers
) -> None:
    """Counted, thirty orders placed and cancelled at once put any product first for everyone."""
    bought, pushed = shop.product(admin), shop.product(admin, initial_stock=1)
    place(client, shop.customer(), bought)
    pusher = shop.customer()
    for _ in range(30):
        cancel(client, pusher, place(client, pusher, pushed, bought))
    container.dispatcher().run_until_idle()

    newcomer = shop.customer()
    assert [item["product_id"] for item in recommendations(client, newcomer)] == [bought["id"]]
    # the pusher bought nothing: both products are only popular (one order), none bought together
    assert [(item["product_id"], item["reason"]) for item in recommendations(client, pusher)] == [
        (bought["id"], "popular")
    ]


def test_a_cancelled_order_is_subtracted_once_however_often_delivered(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, admin: Headers
) -> None:
    a, b = shop.product(admin), shop.product(admin)
    buyer = shop.customer()
    place(client, buyer, a)
    cancel(client, buyer, place(client, buyer, a, b))
    container.dispatcher().run_until_idle()
    rows_before = snapshot(container)

    redelivered = recommendation_deliveries(container, set_status="pending")
    assert container.dispatcher().run_until_idle() == len(redelivered)

    assert snapshot(container) == rows_before
    assert [item["product_id"] for item in recommendations(client, shop.customer())] == [a["id"]]


def test_registering_creates_a_profile(client: FlaskClient, shop: Shop, container: ApplicationContainer) -> None:
    customer = shop.customer()
    container.dispatcher().run_until_idle()

    profiles = snapshot(container)["recommendation_profiles"]

    assert user_id_of(client, customer) in {user_id for user_id, _ in profiles}


def test_products_are_described_as_the_catalog_has_them_now(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, admin: Headers
) -> None:
    a, b = shop.product(admin), shop.product(admin, name="Old name", price="5.00")
    place(client, shop.customer(), a, b)
    me = shop.customer()
    place(client, me, a)
    container.dispatcher().run_until_idle()
    response = client.patch(f"/api/v1/products/{b['id']}", json={"name": "New name", "price": "6.50"}, headers=admin)
    assert response.status_code == 200, response.json

    [item] = recommendations(client, me)

    assert (item["product_id"], item["name"], item["price"]) == (b["id"], "New name", "6.50")


def test_delivering_every_event_again_changes_nothing(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, admin: Headers
) -> None:
    a, b, c = shop.product(admin), shop.product(admin), shop.product(admin)
    buyer, me = shop.customer(), shop.customer()
    place(client, buyer, a, b)
    place(client, buyer, a, c)
    place(client, me, a)
    container.dispatcher().run_until_idle()
    before, rows_before = recommendations(client, me), snapshot(container)
    assert container.dispatcher().run_until_idle() == 0

    redelivered = recommendation_deliveries(container, set_status="pending")
    assert len(redelivered) == 3 + 3  # three registrations (the admin's too) and three orders
    assert container.dispatcher().run_until_idle() == len(redelivered)

    assert recommendation_deliveries(container) == ["done"] * len(redelivered)
    assert snapshot(container) == rows_before
    assert recommendations(client, me) == before


def test_without_a_token_it_is_a_401(client: FlaskClient) -> None:
    response = client.get(RECOMMENDATIONS)

    assert_problem(response, 401, RECOMMENDATIONS)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_with_a_bad_token_it_is_a_401(client: FlaskClient) -> None:
    assert_problem(client.get(RECOMMENDATIONS, headers={"Authorization": "Bearer not-a-token"}), 401)
