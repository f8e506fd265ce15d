"""The order endpoints over real HTTP and SQLite, held to API.md: placing (body, totals, price
snapshots, merging, validation, all-or-nothing stock), reading, listing with keyset pages, and
cancelling."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.containers import ApplicationContainer
from tests.conftest import Shop

ORDERS = "/api/v1/orders"
PROBLEM_JSON = "application/problem+json"
ORDER_FIELDS = {"id", "user_id", "status", "items", "total", "currency", "created_at"}
LINE_FIELDS = {"product_id", "sku", "name", "unit_price", "quantity", "line_total"}

Headers = dict[str, str]


def place(client: FlaskClient, headers: Headers, *lines: tuple[str, Any]) -> TestResponse:
    items = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in lines]
    return client.post(ORDERS, json={"items": items}, headers=headers)


def stock_of(client: FlaskClient, product: dict[str, Any]) -> int:
    stock: int = client.get(f"/api/v1/products/{product['id']}").json["stock"]
    return stock


def user_id_of(client: FlaskClient, headers: Headers) -> str:
    user_id: str = client.get("/api/v1/users/me", headers=headers).json["id"]
    return user_id


def listed_ids(client: FlaskClient, headers: Headers, **query: Any) -> list[str]:
    response = client.get(ORDERS, query_string=query, headers=headers)
    assert response.status_code == 200, response.json
    return [order["id"] for order in response.json["items"]]


def error_fields(response: TestResponse) -> list[str]:
    return [error["field"] for error in response.json["errors"]]


def cursor_of(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


# --- POST /orders ---------------------------------------------------------------------------


def test_placing_answers_201_with_exactly_the_documented_body_and_a_location(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, name="Widget", price="12.50", initial_stock=5)
    customer = shop.customer()
    before = datetime.now(timezone.utc)

    response = place(client, customer, (product["id"], 2))

    assert response.status_code == 201, response.json
    body = response.json
    assert set(body) == ORDER_FIELDS
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert body["user_id"] == user_id_of(client, customer)
    assert body["status"] == "placed"
    assert body["items"] == [
        {
            "product_id": product["id"],
            "sku": product["sku"],
            "name": "Widget",
            "unit_price": "12.50",
            "quantity": 2,
            "line_total": "25.00",
        }
    ]
    assert set(body["items"][0]) == LINE_FIELDS
    assert body["total"] == "25.00"
    assert body["currency"] == "USD"
    assert body["created_at"].endswith("Z")
    created_at = datetime.fromisoformat(body["created_at"])
    assert before - timedelta(seconds=1) <= created_at <= datetime.now(timezone.utc) + timedelta(seconds=1)

    location = response.headers["Location"]
    assert location.endswith(f"{ORDERS}/{body['id']}")
    fetched = client.get(location, headers=customer)
    assert fetched.status_code == 200
    assert fetched.json == body
    assert stock_of(client, product) == 3


def test_totals_are_exact_over_several_lines(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    pricey = shop.product(admin, price="19.99", currency="EUR")
    cheap = shop.product(admin, price="0.01", currency="EUR")
    dime = shop.product(admin, price="0.10", currency="EUR")
    customer = shop.customer()

    response = place(client, customer, (pricey["id"], 3), (cheap["id"], 1), (dime["id"], 7))

    assert response.status_code == 201, response.json
    lines = {line["product_id"]: line for line in response.json["items"]}
    assert lines[pricey["id"]]["line_total"] == "59.97"
    assert lines[cheap["id"]]["line_total"] == "0.01"
    assert lines[dime["id"]]["line_total"] == "0.70"
    assert response.json["total"] == "60.68"
    assert response.json["currency"] == "EUR"


def test_an_order_keeps_the_prices_and_names_of_when_it_was_placed(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, name="Old name", price="5.00")
    customer = shop.customer()
    order = place(client, customer, (product["id"], 2)).json

    patched = client.patch(
        f"/api/v1/products/{product['id']}", json={"price": "7.25", "name": "New name"}, headers=admin
    )
    assert patched.status_code == 200, patched.json

    again = client.get(f"{ORDERS}/{order['id']}", headers=customer).json
    assert again["items"][0]["unit_price"] == "5.00"
    assert again["items"][0]["name"] == "Old name"
    assert again["total"] == "10.00"
    newer = place(client, customer, (product["id"], 2)).json
    assert (newer["items"][0]["unit_price"], newer["total"]) == ("7.25", "14.50")


def test_a_product_listed_twice_becomes_one_line(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    first = shop.product(admin, price="2.00", initial_stock=10)
    second = shop.product(admin, price="3.00", initial_stock=10)
    customer = shop.customer()

    response = place(client, customer, (first["id"], 1), (second["id"], 2), (first["id"], 3))

    assert response.status_code == 201, response.json
    assert [(line["product_id"], line["quantity"]) for line in response.json["items"]] == [
        (first["id"], 4),
        (second["id"], 2),
    ]
    assert response.json["items"][0]["line_total"] == "8.00"
    assert response.json["total"] == "14.00"
    assert (stock_of(client, first), stock_of(client, second)) == (6, 8)


def test_quantities_at_the_limits_are_accepted(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, price="1.00", initial_stock=1001)
    customer = shop.customer()

    assert place(client, customer, (product["id"], 1)).status_code == 201
    assert place(client, customer, (product["id"], 1000)).status_code == 201
    assert stock_of(client, product) == 0


@pytest.mark.parametrize(
    ("items", "fields"),
    [
        pytest.param([], ["items"], id="no-lines"),
        pytest.param([{"product_id": str(uuid.uuid4()), "quantity": 1} for _ in range(51)], ["items"], id="51-lines"),
        pytest.param([{"product_id": "REAL", "quantity": 0}], ["items[0].quantity"], id="quantity-0"),
        pytest.param([{"product_id": "REAL", "quantity": 1001}], ["items[0].quantity"], id="quantity-1001"),
        pytest.param([{"product_id": "REAL", "quantity": "2"}], ["items[0].quantity"], id="quantity-string"),
        pytest.param([{"product_id": "REAL", "quantity": 2.5}], ["items[0].quantity"], id="quantity-float"),
        pytest.param(
            [{"product_id": "REAL", "quantity": 1}, {"product_id": "REAL", "quantity": -1}],
            ["items[1].quantity"],
            id="second-line",
        ),
        pytest.param([{"product_id": "not-a-uuid", "quantity": 1}], ["items[0].product_id"], id="bad-id"),
        pytest.param([{"quantity": 1}], ["items[0].product_id"], id="missing-id"),
    ],
)
def test_invalid_orders_are_400_naming_the_field(
    client: FlaskClient, shop: Shop, items: list[dict[str, Any]], fields: list[str]
) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)
    customer = shop.customer()
    items = [{**item, "product_id": product["id"]} if item.get("product_id") == "REAL" else item for item in items]

    response = client.post(ORDERS, json={"items": items}, headers=customer)

    assert response.status_code == 400, response.json
    assert response.mimetype == PROBLEM_JSON
    assert error_fields(response) == fields
    assert stock_of(client, product) == 10
    assert listed_ids(client, customer) == []


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[]", b'{"items": "many"}', b'{"items": [{"product_id": null, "quantity": 1}], "x": 1}', b""],
    ids=["malformed", "array", "items-not-list", "extra-field", "empty"],
)
def test_malformed_bodies_are_400(client: FlaskClient, shop: Shop, raw: bytes) -> None:
    customer = shop.customer()

    response = client.post(ORDERS, data=raw, headers={**customer, "Content-Type": "application/json"})

    assert response.status_code == 400, response.json
    assert response.mimetype == PROBLEM_JSON


def test_merged_quantity_over_the_limit_is_400(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=2000)
    customer = shop.customer()

    response = place(client, customer, (product["id"], 600), (product["id"], 600))

    assert response.status_code == 400, response.json
    assert stock_of(client, product) == 2000


def test_an_unknown_product_is_400_naming_its_line(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)
    customer = shop.customer()
    unknown = str(uuid.uuid4())

    response = place(client, customer, (product["id"], 1), (unknown, 1))

    assert response.status_code == 400, response.json
    assert response.mimetype == PROBLEM_JSON
    assert error_fields(response) == ["items[1].product_id"]
    assert unknown in response.json["detail"]
    assert stock_of(client, product) == 10
    assert listed_ids(client, customer) == []


def test_lines_in_different_currencies_are_400(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    dollars = shop.product(admin, currency="USD", initial_stock=10)
    euros = shop.product(admin, currency="EUR", initial_stock=10)
    customer = shop.customer()

    response = place(client, customer, (dollars["id"], 1), (euros["id"], 1))

    assert response.status_code == 400, response.json
    assert response.mimetype == PROBLEM_JSON
    assert (stock_of(client, dollars), stock_of(client, euros)) == (10, 10)
    assert listed_ids(client, customer) == []


def test_lines_in_different_currencies_are_400_even_when_a_line_is_short(client: FlaskClient, shop: Shop) -> None:
    """What the order is decides before what the stock allows, as when prices were looked up first."""
    admin = shop.admin()
    dollars = shop.product(admin, currency="USD", initial_stock=10)
    euros = shop.product(admin, currency="EUR", initial_stock=1)
    customer = shop.customer()

    response = place(client, customer, (dollars["id"], 1), (euros["id"], 2))

    assert response.status_code == 400, response.json
    assert (stock_of(client, dollars), stock_of(client, euros)) == (10, 1)
    assert listed_ids(client, customer) == []


def test_not_enough_stock_for_one_line_is_409_and_takes_no_stock_at_all(client: FlaskClient, shop: Shop) -> None:
    """The short product is the last one in product-id order too, so the others are taken first
    by any line-by-line reservation, and must be put back."""
    admin = shop.admin()
    products = sorted((shop.product(admin, initial_stock=5) for _ in range(3)), key=lambda p: uuid.UUID(p["id"]))
    short = products[-1]
    client.post(f"/api/v1/products/{short['id']}/stock-adjustments", json={"delta": -4}, headers=admin)
    assert stock_of(client, short) == 1
    customer = shop.customer()

    response = place(client, customer, *((product["id"], 2) for product in products))

    assert response.status_code == 409, response.json
    assert response.mimetype == PROBLEM_JSON
    assert short["id"] in response.json["detail"] or short["sku"] in response.json["detail"]
    for other in products[:-1]:
        assert other["id"] not in response.json["detail"]
    assert [stock_of(client, product) for product in products] == [5, 5, 1]
    assert listed_ids(client, customer) == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["none", "forged", "wrong-scheme"],
)
def test_placing_without_a_valid_token_is_401(client: FlaskClient, shop: Shop, headers: Headers) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)

    response = place(client, headers, (product["id"], 1))

    assert response.status_code == 401
    assert response.mimetype == PROBLEM_JSON
    assert stock_of(client, product) == 10


# --- GET /orders/{id} -----------------------------------------------------------------------


def test_an_order_is_visible_to_its_owner_and_admins_only(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin)
    owner, stranger = shop.customer(), shop.customer()
    order = place(client, owner, (product["id"], 1)).json
    path = f"{ORDERS}/{order['id']}"

    assert client.get(path, headers=owner).json == order
    assert client.get(path, headers=admin).json == order
    hidden = client.get(path, headers=stranger)
    assert hidden.status_code == 404
    assert hidden.mimetype == PROBLEM_JSON
    unknown = client.get(f"{ORDERS}/{uuid.uuid4()}", headers=owner)
    assert unknown.status_code == 404
    assert hidden.json["title"] == unknown.json["title"]
    assert client.get(f"{ORDERS}/not-a-uuid", headers=owner).status_code == 404
    assert client.get(path).status_code == 401


# --- GET /orders ----------------------------------------------------------------------------


def test_listing_shows_only_the_callers_orders_newest_first(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=100)
    mine, theirs = shop.customer(), shop.customer()
    my_orders = [place(client, mine, (product["id"], 1)).json["id"] for _ in range(3)]
    their_order = place(client, theirs, (product["id"], 1)).json["id"]

    response = client.get(ORDERS, headers=mine)

    assert response.status_code == 200
    assert [order["id"] for order in response.json["items"]] == my_orders[::-1]
    assert response.json["next_cursor"] is None
    assert set(response.json["items"][0]) == ORDER_FIELDS
    assert listed_ids(client, theirs) == [their_order]
    assert listed_ids(client, admin) == []
    assert client.get(ORDERS).status_code == 401


def test_listing_pages_with_cursors_without_duplicates_or_gaps(client: FlaskClient, shop: Shop) -> None:
    """An order placed between two pages does not shift the later pages (keyset, not offset)."""
    admin = shop.admin()
    product = shop.product(admin, initial_stock=100)
    customer = shop.customer()
    placed = [place(client, customer, (product["id"], 1)).json["id"] for _ in range(5)]

    first = client.get(ORDERS, query_string={"limit": 2}, headers=customer).json
    place(client, customer, (product["id"], 1))
    seen = [order["id"] for order in first["items"]]
    cursor = first["next_cursor"]
    pages = 1
    while cursor is not None:
        page = client.get(ORDERS, query_string={"limit": 2, "cursor": cursor}, headers=customer)
        assert page.status_code == 200, page.json
        seen += [order["id"] for order in page.json["items"]]
        cursor = page.json["next_cursor"]
        pages += 1
        assert pages <= 5, "pagination does not end"

    assert seen == placed[::-1]
    assert pages == 3


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("garbage!!", id="not-base64"),
        pytest.param(cursor_of([1, 2]), id="not-an-object"),
        pytest.param(cursor_of({"id": str(uuid.uuid4())}), id="missing-key"),
        pytest.param(cursor_of({"created_at": "yesterday", "id": str(uuid.uuid4())}), id="bad-time"),
        pytest.param(cursor_of({"created_at": "2024-01-01T00:00:00+00:00", "id": 5}), id="id-not-a-string"),
        pytest.param(cursor_of({"created_at": "2024-01-01T00:00:00", "id": str(uuid.uuid4())}), id="naive-time"),
        pytest.param("x" * 600, id="too-long"),
    ],
)
def test_a_cursor_the_api_did_not_make_is_400(client: FlaskClient, shop: Shop, cursor: str) -> None:
    customer = shop.customer()

    response = client.get(ORDERS, query_string={"cursor": cursor}, headers=customer)

    assert response.status_code == 400, response.json
    assert response.mimetype == PROBLEM_JSON
    assert error_fields(response) == ["cursor"]


@pytest.mark.parametrize("limit", ["0", "101", "ten"])
def test_a_limit_out_of_range_is_400(client: FlaskClient, shop: Shop, limit: str) -> None:
    customer = shop.customer()

    response = client.get(ORDERS, query_string={"limit": limit}, headers=customer)

    assert response.status_code == 400
    assert error_fields(response) == ["limit"]


# --- POST /orders/{id}/cancel ---------------------------------------------------------------


def test_the_owner_cancels_and_the_stock_comes_back(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)
    customer = shop.customer()
    order = place(client, customer, (product["id"], 3)).json
    assert stock_of(client, product) == 7

    response = client.post(f"{ORDERS}/{order['id']}/cancel", headers=customer)

    assert response.status_code == 200, response.json
    assert response.json == {**order, "status": "cancelled"}
    assert client.get(f"{ORDERS}/{order['id']}", headers=customer).json["status"] == "cancelled"
    assert stock_of(client, product) == 10


def test_an_admin_cancels_a_customers_order(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)
    customer = shop.customer()
    order = place(client, customer, (product["id"], 4)).json

    response = client.post(f"{ORDERS}/{order['id']}/cancel", headers=admin)

    assert response.status_code == 200, response.json
    assert response.json["status"] == "cancelled"
    assert response.json["user_id"] == order["user_id"]
    assert stock_of(client, product) == 10


def test_another_customer_cannot_cancel_and_learns_nothing(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)
    owner, stranger = shop.customer(), shop.customer()
    order = place(client, owner, (product["id"], 4)).json

    response = client.post(f"{ORDERS}/{order['id']}/cancel", headers=stranger)

    assert response.status_code == 404
    assert response.mimetype == PROBLEM_JSON
    assert client.get(f"{ORDERS}/{order['id']}", headers=owner).json["status"] == "placed"
    assert stock_of(client, product) == 6


def test_cancelling_twice_is_200_and_returns_the_stock_once(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)
    customer = shop.customer()
    order = place(client, customer, (product["id"], 3)).json

    first = client.post(f"{ORDERS}/{order['id']}/cancel", headers=customer)
    second = client.post(f"{ORDERS}/{order['id']}/cancel", headers=customer)
    by_admin = client.post(f"{ORDERS}/{order['id']}/cancel", headers=admin)

    assert (first.status_code, second.status_code, by_admin.status_code) == (200, 200, 200)
    assert second.json == first.json == by_admin.json
    assert stock_of(client, product) == 10


def test_a_cancel_the_product_context_could_not_answer_is_200_and_its_stock_comes_back_by_event(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=10)
    customer = shop.customer()
    order = place(client, customer, (product["id"], 3)).json
    assert container.dispatcher().run_until_idle() > 0  # the placement's deliveries, confirmation included

    def unreachable(reservation_id: uuid.UUID, reason: str) -> None:
        raise ConnectionError("product context unreachable")

    monkeypatch.setattr(container.product.api(), "release", unreachable)
    response = client.post(f"{ORDERS}/{order['id']}/cancel", headers=customer)

    assert response.status_code == 200, response.json
    assert response.json["status"] == "cancelled"
    assert stock_of(client, product) == 7, "not released yet"
    container.dispatcher().run_until_idle()  # delivers OrderCancelled to the product context
    assert stock_of(client, product) == 10


def test_cancelling_an_unknown_or_malformed_order_is_404(client: FlaskClient, shop: Shop) -> None:
    customer = shop.customer()

    assert client.post(f"{ORDERS}/{uuid.uuid4()}/cancel", headers=customer).status_code == 404
    assert client.post(f"{ORDERS}/not-a-uuid/cancel", headers=customer).status_code == 404
    assert client.post(f"{ORDERS}/{uuid.uuid4()}/cancel").status_code == 401
