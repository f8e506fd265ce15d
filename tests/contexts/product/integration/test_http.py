"""The product endpoints honour API.md: catalog CRUD for admins, public listing and stock adjustments."""

from __future__ import annotations

import base64
import random
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update
from werkzeug.test import TestResponse

from app.containers import ApplicationContainer
from contexts.product.adapters.orm import StockRow
from contexts.product.domain.model import MAX_STOCK
from tests.conftest import Shop
from tests.problems import assert_problem, invalid_fields

API = "/api/v1"
PRODUCT_FIELDS = {"id", "sku", "name", "description", "price", "currency", "stock"}
# A well-formed id no product has. Fixed, not drawn per run: it names parametrized tests, and
# pytest-xdist's workers must each collect the same ones.
UNKNOWN_ID = "6f1c2a4e-8d3b-4f5a-9c7e-2b1d0a3f4e5c"


def assert_unauthenticated(response: TestResponse) -> None:
    assert_problem(response, 401)
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")


@pytest.fixture
def admin(shop: Shop) -> dict[str, str]:
    return shop.admin()


@pytest.fixture
def customer(shop: Shop) -> dict[str, str]:
    return shop.customer()


def new_product(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"sku": f"SKU-{uuid.uuid4().hex[:10]}", "name": "Widget", "price": "12.50"}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not ...}


def create(client: FlaskClient, admin: dict[str, str], **fields: Any) -> TestResponse:
    return client.post(f"{API}/products", json=new_product(**fields), headers=admin)


def fetch(client: FlaskClient, product_id: str) -> dict[str, Any]:
    response = client.get(f"{API}/products/{product_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json
    return body


def all_products(client: FlaskClient) -> list[dict[str, Any]]:
    response = client.get(f"{API}/products", query_string={"limit": 100})
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json["items"]
    return items


# --- POST /products ---------------------------------------------------------------------------


def test_creating_a_product_needs_a_token(client: FlaskClient) -> None:
    assert_unauthenticated(client.post(f"{API}/products", json=new_product()))
    assert all_products(client) == []


def test_creating_a_product_is_forbidden_to_customers(client: FlaskClient, customer: dict[str, str]) -> None:
    assert_problem(client.post(f"{API}/products", json=new_product(), headers=customer), 403)
    assert all_products(client) == []


def test_creating_a_product_answers_201_with_the_contract_fields(client: FlaskClient, admin: dict[str, str]) -> None:
    response = create(
        client,
        admin,
        sku="MUG-001",
        name="Mug",
        description="Holds tea",
        price="12.50",
        currency="EUR",
        initial_stock=7,
    )

    assert response.status_code == 201, response.json
    body = response.json
    assert set(body) == PRODUCT_FIELDS
    assert uuid.UUID(body["id"])
    assert body == {
        "id": body["id"],
        "sku": "MUG-001",
        "name": "Mug",
        "description": "Holds tea",
        "price": "12.50",
        "currency": "EUR",
        "stock": 7,
    }


def test_location_of_a_created_product_serves_it(client: FlaskClient, admin: dict[str, str]) -> None:
    response = create(client, admin)
    assert response.status_code == 201
    location = response.headers["Location"]
    assert location.endswith(f"{API}/products/{response.json['id']}")
    assert client.get(location).json == response.json


def test_optional_fields_take_their_defaults(client: FlaskClient, admin: dict[str, str]) -> None:
    response = create(client, admin, description=..., currency=..., initial_stock=...)
    assert response.status_code == 201, response.json
    assert response.json["currency"] == "USD"
    assert response.json["stock"] == 0
    assert response.json["description"] is None


@pytest.mark.parametrize(
    ("given", "shown"),
    [("12.5", "12.50"), ("12", "12.00"), ("0", "0.00"), ("0.05", "0.05"), ("9999999999.99", "9999999999.99")],
)
def test_price_is_always_shown_with_two_places(
    client: FlaskClient, admin: dict[str, str], given: str, shown: str
) -> None:
    response = create(client, admin, price=given)
    assert response.status_code == 201, response.json
    assert response.json["price"] == shown
    assert fetch(client, response.json["id"])["price"] == shown


def test_duplicate_sku_is_409_and_the_first_product_stays(client: FlaskClient, admin: dict[str, str]) -> None:
    first = create(client, admin, sku="DUP-1", name="First")
    assert first.status_code == 201

    assert_problem(create(client, admin, sku="DUP-1", name="Second"), 409)
    assert [item["name"] for item in all_products(client)] == ["First"]


@pytest.mark.parametrize("variant", ["dup-1", "Dup-1", "dUP-1"])
def test_a_sku_differing_only_in_case_is_a_duplicate(client: FlaskClient, admin: dict[str, str], variant: str) -> None:
    assert create(client, admin, sku="DUP-1", name="First").status_code == 201
    problem = assert_problem(create(client, admin, sku=variant, name="Second"), 409)
    assert variant in problem["detail"]
    assert [item["sku"] for item in all_products(client)] == ["DUP-1"]


@pytest.mark.parametrize(
    "price",
    [
        "12.345",
        "-1",
        "-0.01",
        12,
        12.5,
        "abc",
        "",
        "1e3",
        "NaN",
        "Infinity",
        " 12.00",
        "12.00 ",
        "1,00",
        None,
        "\u0661\u0662.\u0665\u0660",
        "\uff11\uff12",
    ],
    ids=repr,
)
def test_an_invalid_price_is_400_naming_price(client: FlaskClient, admin: dict[str, str], price: Any) -> None:
    """Prices are ASCII decimal strings with at most two places; numbers, exponents and other
    scripts' digits are refused rather than guessed at."""
    assert invalid_fields(create(client, admin, price=price)) == {"price"}
    assert all_products(client) == []


@pytest.mark.parametrize(
    ("currency", "price"), [("JPY", "1.50"), ("JPY", "1.5"), ("KRW", "999.01"), ("CLP", "0.10"), ("XOF", "7.99")]
)
def test_a_price_finer_than_its_currency_s_minor_unit_is_400_naming_price(
    client: FlaskClient, admin: dict[str, str], currency: str, price: str
) -> None:
    response = create(client, admin, currency=currency, price=price)
    assert invalid_fields(response) == {"price"}
    assert currency in response.json["detail"]
    assert all_products(client) == []


@pytest.mark.parametrize(
    ("currency", "price", "shown"),
    [("JPY", "1500", "1500.00"), ("JPY", "1500.00", "1500.00"), ("USD", "1.50", "1.50"), ("KWD", "1.25", "1.25")],
)
def test_a_price_in_its_currency_s_minor_unit_is_taken(
    client: FlaskClient, admin: dict[str, str], currency: str, price: str, shown: str
) -> None:
    response = create(client, admin, currency=currency, price=price)
    assert response.status_code == 201, response.json
    assert (response.json["currency"], response.json["price"]) == (currency, shown)


def test_a_revised_price_keeps_to_the_product_s_currency(client: FlaskClient, admin: dict[str, str]) -> None:
    product = create(client, admin, currency="JPY", price="1500").json
    response = client.patch(f"{API}/products/{product['id']}", json={"price": "1499.50"}, headers=admin)
    assert invalid_fields(response) == {"price"}
    assert fetch(client, product["id"])["price"] == "1500.00"


@pytest.mark.parametrize("currency", ["usd", "US", "EURO", "", "U$D", 840, None, "ZZZ", "XAU"], ids=repr)
def test_an_invalid_currency_is_400_naming_currency(client: FlaskClient, admin: dict[str, str], currency: Any) -> None:
    assert invalid_fields(create(client, admin, currency=currency)) == {"currency"}


@pytest.mark.parametrize("stock", [-1, "5", 1.5, True, None], ids=repr)
def test_an_invalid_initial_stock_is_400(client: FlaskClient, admin: dict[str, str], stock: Any) -> None:
    assert invalid_fields(create(client, admin, initial_stock=stock)) == {"initial_stock"}


@pytest.mark.parametrize("missing", ["sku", "name", "price"])
def test_a_missing_required_field_is_400_naming_it(client: FlaskClient, admin: dict[str, str], missing: str) -> None:
    assert invalid_fields(create(client, admin, **{missing: ...})) == {missing}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sku", ""),
        ("sku", "has space"),
        ("sku", 7),
        ("name", ""),
        ("name", "   "),
        ("name", 7),
        ("name", "nul\x00byte"),
        ("name", "two\nlines"),
        ("description", 7),
        ("description", "bell\x07"),
        ("stock", 3),
        ("id", UNKNOWN_ID),
    ],
)
def test_an_invalid_or_unknown_field_is_400_naming_it(
    client: FlaskClient, admin: dict[str, str], field: str, value: Any
) -> None:
    assert invalid_fields(create(client, admin, **{field: value})) == {field}


# --- GET /products ----------------------------------------------------------------------------


def walk(client: FlaskClient, **query: Any) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following ``next_cursor`` until it is null."""
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        response = client.get(f"{API}/products", query_string={**query, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.json
        assert set(response.json) == {"items", "next_cursor"}
        pages.append(response.json["items"])
        cursor = response.json["next_cursor"]
        if cursor is None:
            return pages
        assert isinstance(cursor, str) and cursor
        assert len(pages) < 50, "the listing never ends"


def test_pages_cover_every_product_once_in_a_stable_order(
    client: FlaskClient, shop: Shop, admin: dict[str, str]
) -> None:
    skus = [f"P-{n:02d}" for n in range(7)]
    random.Random(7).shuffle(skus)
    created = {shop.product(admin, sku=sku)["id"] for sku in skus}

    pages = walk(client, limit=3)

    assert [len(page) for page in pages] == [3, 3, 1]
    ids = [item["id"] for page in pages for item in page]
    assert len(ids) == len(set(ids))
    assert set(ids) == created
    assert [[item["id"] for item in page] for page in walk(client, limit=3)] == [
        [item["id"] for item in page] for page in pages
    ]
    assert [item["id"] for page in walk(client, limit=100) for item in page] == ids


def test_next_cursor_is_null_when_the_last_page_is_exactly_full(
    client: FlaskClient, shop: Shop, admin: dict[str, str]
) -> None:
    for _ in range(4):
        shop.product(admin)
    assert [len(page) for page in walk(client, limit=2)] == [2, 2]
    assert [len(page) for page in walk(client, limit=4)] == [4]


def test_empty_catalog_is_one_empty_page(client: FlaskClient) -> None:
    assert client.get(f"{API}/products").json == {"items": [], "next_cursor": None}


def test_products_created_while_paging_cause_no_duplicates_or_gaps(
    client: FlaskClient, shop: Shop, admin: dict[str, str]
) -> None:
    original = {shop.product(admin, sku=f"M-{n}")["id"] for n in range(1, 9, 2)}  # M-1, M-3, M-5, M-7
    first = client.get(f"{API}/products", query_string={"limit": 2})
    shop.product(admin, sku="M-0")  # sorts before the cursor
    shop.product(admin, sku="M-4")  # sorts after it
    rest = walk(client, limit=2, cursor=first.json["next_cursor"])

    seen = [item["id"] for item in first.json["items"]] + [item["id"] for page in rest for item in page]
    assert len(seen) == len(set(seen))
    assert original <= set(seen)


def test_default_limit_is_twenty(client: FlaskClient, shop: Shop, admin: dict[str, str]) -> None:
    for _ in range(21):
        shop.product(admin)
    response = client.get(f"{API}/products")
    assert len(response.json["items"]) == 20
    assert response.json["next_cursor"] is not None


@pytest.mark.parametrize("limit", ["1", "100"])
def test_limit_bounds_are_accepted(client: FlaskClient, shop: Shop, admin: dict[str, str], limit: str) -> None:
    shop.product(admin)
    shop.product(admin)
    response = client.get(f"{API}/products", query_string={"limit": limit})
    assert response.status_code == 200
    assert len(response.json["items"]) == min(int(limit), 2)


@pytest.mark.parametrize("limit", ["0", "101", "-1", "x", "1.5", ""])
def test_an_out_of_range_or_non_integer_limit_is_400(client: FlaskClient, limit: str) -> None:
    assert invalid_fields(client.get(f"{API}/products", query_string={"limit": limit})) == {"limit"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        "%%%",
        "\u00e9\u00e9",
        _b64(b"[1, 2]"),
        _b64(b'"a string"'),
        _b64(b"{}"),
        _b64(b'{"id": "x"}'),
        _b64(b"\xff\xfe\x00"),
        _b64(b"{" * 300),
        "a" * 600,
    ],
    ids=lambda cursor: cursor[:20],
)
def test_a_cursor_the_api_did_not_make_is_400_naming_cursor(
    client: FlaskClient, shop: Shop, admin: dict[str, str], cursor: str
) -> None:
    shop.product(admin)
    body = assert_problem(client.get(f"{API}/products", query_string={"cursor": cursor}), 400)
    assert [error["field"] for error in body["errors"]] == ["cursor"]


def test_q_matches_name_or_sku_case_insensitively(client: FlaskClient, shop: Shop, admin: dict[str, str]) -> None:
    by_name = shop.product(admin, sku="A-1", name="Blue Teapot")["id"]
    by_sku = shop.product(admin, sku="TEAPOT-XL", name="Large vessel")["id"]
    shop.product(admin, sku="B-2", name="Coffee cup")

    for q in ("teapot", "TEAPOT", "TeaPot", "eapo"):
        found = {item["id"] for page in walk(client, q=q) for item in page}
        assert found == {by_name, by_sku}, q
    assert {item["id"] for page in walk(client, q="blue teapot") for item in page} == {by_name}
    assert walk(client, q="nothing like it") == [[]]


def test_q_is_case_insensitive_beyond_ascii(client: FlaskClient, shop: Shop, admin: dict[str, str]) -> None:
    """API.md: ``q`` matches the name case-insensitively, which must hold for any letter, not only A–Z."""
    eclair = shop.product(admin, name="\u00c9CLAIR AU CHOCOLAT")["id"]  # ÉCLAIR
    shop.product(admin, name="Croissant")

    for q in ("\u00c9CLAIR", "\u00e9clair", "\u00c9clair"):
        assert {item["id"] for page in walk(client, q=q) for item in page} == {eclair}, q


def test_q_treats_percent_and_underscore_literally(client: FlaskClient, shop: Shop, admin: dict[str, str]) -> None:
    percent = shop.product(admin, sku="C-1", name="100% cotton")["id"]
    shop.product(admin, sku="C-2", name="1000 cotton")
    underscore = shop.product(admin, sku="S-1", name="snake_case")["id"]
    shop.product(admin, sku="S-2", name="snakeXcase")

    def found(q: str) -> set[str]:
        return {item["id"] for page in walk(client, q=q) for item in page}

    assert found("%") == {percent}
    assert found("0%") == {percent}
    assert found("_") == {underscore}
    assert found("e_c") == {underscore}
    assert found("\\") == set()


def test_q_and_pagination_combine(client: FlaskClient, shop: Shop, admin: dict[str, str]) -> None:
    wanted = {shop.product(admin, name=f"Red thing {n}")["id"] for n in range(5)}
    for n in range(5):
        shop.product(admin, name=f"Green thing {n}")

    pages = walk(client, q="red", limit=2)

    assert [len(page) for page in pages] == [2, 2, 1]
    ids = [item["id"] for page in pages for item in page]
    assert len(ids) == len(set(ids)) and set(ids) == wanted


# --- GET /products/{id} -----------------------------------------------------------------------


def test_a_product_is_public(client: FlaskClient, shop: Shop, admin: dict[str, str]) -> None:
    product = shop.product(admin, price="3.10", initial_stock=4)
    response = client.get(f"{API}/products/{product['id']}")
    assert response.status_code == 200
    assert response.json == product
    assert set(response.json) == PRODUCT_FIELDS


@pytest.mark.parametrize("product_id", [UNKNOWN_ID, "not-a-uuid", "123", "x" * 300, "%00", "%C3%A9"])
def test_an_unknown_or_malformed_id_is_404(
    client: FlaskClient, shop: Shop, admin: dict[str, str], product_id: str
) -> None:
    shop.product(admin)
    assert_problem(client.get(f"{API}/products/{product_id}"), 404)


# --- PATCH /products/{id} ---------------------------------------------------------------------


@pytest.fixture
def product(shop: Shop, admin: dict[str, str]) -> dict[str, Any]:
    return shop.product(admin, sku="PATCH-ME", name="Original", description="Old words", price="5.00", initial_stock=3)


def test_patch_needs_a_token(client: FlaskClient, product: dict[str, Any]) -> None:
    assert_unauthenticated(client.patch(f"{API}/products/{product['id']}", json={"name": "Hacked"}))
    assert fetch(client, product["id"]) == product


def test_patch_is_forbidden_to_customers(
    client: FlaskClient, product: dict[str, Any], customer: dict[str, str]
) -> None:
    assert_problem(client.patch(f"{API}/products/{product['id']}", json={"name": "Hacked"}, headers=customer), 403)
    assert fetch(client, product["id"]) == product


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"name": "Renamed"}, {"name": "Renamed"}),
        ({"description": "New words"}, {"description": "New words"}),
        ({"description": None}, {"description": None}),
        ({"price": "7.5"}, {"price": "7.50"}),
        (
            {"name": "All", "description": "three", "price": "0.99"},
            {"name": "All", "description": "three", "price": "0.99"},
        ),
    ],
    ids=["name", "description", "description-null", "price", "all"],
)
def test_patch_changes_what_is_given_and_nothing_else(
    client: FlaskClient,
    admin: dict[str, str],
    product: dict[str, Any],
    changes: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    response = client.patch(f"{API}/products/{product['id']}", json=changes, headers=admin)

    assert response.status_code == 200, response.json
    assert response.json == {**product, **expected}
    assert fetch(client, product["id"]) == {**product, **expected}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": None}, "name"),
        ({"price": None}, "price"),
        ({"name": ""}, "name"),
        ({"price": "1.234"}, "price"),
        ({"price": -1}, "price"),
        ({"description": 5}, "description"),
        ({"sku": "NEW-SKU"}, "sku"),
        ({"stock": 100}, "stock"),
        ({"currency": "EUR"}, "currency"),
    ],
    ids=repr,
)
def test_an_invalid_patch_is_400_and_changes_nothing(
    client: FlaskClient, admin: dict[str, str], product: dict[str, Any], changes: dict[str, Any], field: str
) -> None:
    response = client.patch(
        f"{API}/products/{product['id']}", json={"description": "ignored", **changes}, headers=admin
    )
    assert field in invalid_fields(response)
    assert fetch(client, product["id"]) == product


@pytest.mark.parametrize("product_id", [UNKNOWN_ID, "not-a-uuid"])
def test_patching_an_unknown_product_is_404(client: FlaskClient, admin: dict[str, str], product_id: str) -> None:
    assert_problem(client.patch(f"{API}/products/{product_id}", json={"name": "Ghost"}, headers=admin), 404)


# --- POST /products/{id}/stock-adjustments ----------------------------------------------------


def adjust(client: FlaskClient, headers: dict[str, str], product_id: str, body: Any) -> TestResponse:
    return client.post(f"{API}/products/{product_id}/stock-adjustments", json=body, headers=headers)


def test_adjusting_stock_needs_a_token(client: FlaskClient, product: dict[str, Any]) -> None:
    assert_unauthenticated(adjust(client, {}, product["id"], {"delta": 5}))
    assert fetch(client, product["id"])["stock"] == 3


def test_adjusting_stock_is_forbidden_to_customers(
    client: FlaskClient, product: dict[str, Any], customer: dict[str, str]
) -> None:
    assert_problem(adjust(client, customer, product["id"], {"delta": 5}), 403)
    assert fetch(client, product["id"])["stock"] == 3


def test_stock_moves_up_and_down(client: FlaskClient, admin: dict[str, str], product: dict[str, Any]) -> None:
    up = adjust(client, admin, product["id"], {"delta": 10, "reason": "delivery"})
    assert up.status_code == 200, up.json
    assert up.json == {**product, "stock": 13}

    down = adjust(client, admin, product["id"], {"delta": -4})
    assert down.status_code == 200
    assert down.json == {**product, "stock": 9}

    to_zero = adjust(client, admin, product["id"], {"delta": -9, "reason": "write-off"})
    assert to_zero.status_code == 200
    assert to_zero.json["stock"] == 0
    assert fetch(client, product["id"])["stock"] == 0


@pytest.mark.parametrize("delta", [-4, -1_000_000_000])
def test_stock_never_goes_below_zero(
    client: FlaskClient, admin: dict[str, str], product: dict[str, Any], delta: int
) -> None:
    assert_problem(adjust(client, admin, product["id"], {"delta": delta}), 409)
    assert fetch(client, product["id"])["stock"] == 3


def test_stock_never_goes_over_the_documented_maximum(client: FlaskClient, admin: dict[str, str]) -> None:
    """initial_stock is at most MAX_STOCK; adjustments used to add up past it without bound."""
    product = create(client, admin, initial_stock=MAX_STOCK - 5).json
    problem = assert_problem(adjust(client, admin, product["id"], {"delta": 6}), 409)
    assert f"{MAX_STOCK:,}" in problem["detail"]
    assert adjust(client, admin, product["id"], {"delta": 5}).json["stock"] == MAX_STOCK
    assert_problem(adjust(client, admin, product["id"], {"delta": MAX_STOCK}), 409)
    assert fetch(client, product["id"])["stock"] == MAX_STOCK


def test_stock_over_the_maximum_from_before_it_existed_can_be_brought_down(
    client: FlaskClient, admin: dict[str, str], container: ApplicationContainer
) -> None:
    """The maximum used to bound reductions too: such stock could not go down by less than the
    excess, and the 409 said "negative"."""
    product = create(client, admin, initial_stock=MAX_STOCK).json
    with container.product_database().begin(write=True) as connection:
        connection.execute(
            update(StockRow).filter_by(product_id=uuid.UUID(product["id"])).values(available=MAX_STOCK + 100)
        )

    assert adjust(client, admin, product["id"], {"delta": -1}).json["stock"] == MAX_STOCK + 99
    over = assert_problem(adjust(client, admin, product["id"], {"delta": 1}), 409)
    assert f"over the maximum of {MAX_STOCK:,}" in over["detail"]
    assert adjust(client, admin, product["id"], {"delta": -MAX_STOCK}).json["stock"] == 99
    under = assert_problem(adjust(client, admin, product["id"], {"delta": -100}), 409)
    assert "negative" in under["detail"]
    assert fetch(client, product["id"])["stock"] == 99


def test_units_held_by_orders_count_towards_the_maximum(client: FlaskClient, shop: Shop, admin: dict[str, str]) -> None:
    """Reserved units come back to the shelf when an order is cancelled: they count already."""
    product = create(client, admin, initial_stock=MAX_STOCK).json
    order = client.post(
        f"{API}/orders", json={"items": [{"product_id": product["id"], "quantity": 10}]}, headers=shop.customer()
    )
    assert order.status_code == 201, order.json
    assert_problem(adjust(client, admin, product["id"], {"delta": 1}), 409)
    assert fetch(client, product["id"])["stock"] == MAX_STOCK - 10


@pytest.mark.parametrize(
    "body",
    [
        {"delta": 0},
        {"delta": "5"},
        {"delta": 1.5},
        {"delta": 2.0},
        {"delta": True},
        {"delta": None},
        {},
        {"reason": "x"},
        {"delta": 10**12},
        {"delta": -(10**12)},
    ],
    ids=repr,
)
def test_an_invalid_delta_is_400_naming_delta(
    client: FlaskClient, admin: dict[str, str], product: dict[str, Any], body: dict[str, Any]
) -> None:
    assert invalid_fields(adjust(client, admin, product["id"], body)) == {"delta"}
    assert fetch(client, product["id"])["stock"] == 3


@pytest.mark.parametrize(
    ("body", "field"), [({"delta": 1, "reason": 5}, "reason"), ({"delta": 1, "quantity": 5}, "quantity")]
)
def test_other_invalid_adjustment_fields_are_400(
    client: FlaskClient, admin: dict[str, str], product: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    assert invalid_fields(adjust(client, admin, product["id"], body)) == {field}
    assert fetch(client, product["id"])["stock"] == 3


@pytest.mark.parametrize("product_id", [UNKNOWN_ID, "not-a-uuid"])
def test_adjusting_an_unknown_product_is_404(client: FlaskClient, admin: dict[str, str], product_id: str) -> None:
    assert_problem(adjust(client, admin, product_id, {"delta": 1}), 404)


def test_a_description_keeps_its_line_breaks(client: FlaskClient, admin: dict[str, str]) -> None:
    response = create(client, admin, description="first line\n\tsecond line")
    assert response.status_code == 201
    assert response.json is not None and response.json["description"] == "first line\n\tsecond line"


@pytest.mark.parametrize("q", ["\x00", "a\x00b", "line\nbreak"], ids=repr)
def test_a_search_with_control_characters_is_400_naming_q(client: FlaskClient, q: str) -> None:
    assert invalid_fields(client.get("/api/v1/products", query_string={"q": q})) == {"q"}
