"""The product context's internal endpoints: only the shop's own services reach them, bad input
is a 400 problem, refusals carry what the remote client needs to raise the published errors,
and none of it is in the public API's OpenAPI document.

The behaviour behind them is the ProductApi contract, run through the remote client in
tests/contexts/product/contract; this file pins the door and the wire format.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.factory import container_of
from tests.conftest import MakeApp, Shop
from tests.integration.test_openapi import EXPECTED_OPERATIONS
from tests.problems import assert_problem, invalid_fields

SERVICE_TOKEN = "internal-endpoints-test-token-0123456789"
SERVICE = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
INTERNAL = "/internal/v1/product"


@pytest.fixture
def service_app(make_app: MakeApp) -> Flask:
    return make_app(service_token=SERVICE_TOKEN)


@pytest.fixture
def client(service_app: Flask) -> FlaskClient:
    return service_app.test_client()


@pytest.fixture
def shop(client: FlaskClient, service_app: Flask) -> Shop:
    return Shop(client, container_of(service_app))


@pytest.fixture
def product(shop: Shop) -> dict[str, Any]:
    return shop.product(shop.admin(), sku="MUG-1", price="7.50", initial_stock=5)


def calls(product_id: str) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """Every internal endpoint, called correctly: (method, path, JSON body)."""
    reservation = uuid.uuid4()
    yield "GET", f"{INTERNAL}/products?ids={product_id}", None
    yield "PUT", f"{INTERNAL}/reservations/{reservation}", {"lines": [{"product_id": product_id, "quantity": 1}]}
    yield "POST", f"{INTERNAL}/reservations/{reservation}/release", {"reason": "order_cancelled"}
    yield "GET", f"{INTERNAL}/access", None


def call(client: FlaskClient, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    return client.open(path, method=method, json=body, headers=headers or {})


def members(problem: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: problem.get(name) for name in names}


def stock_of(client: FlaskClient, product_id: str) -> int:
    stock: int = client.get(f"/api/v1/products/{product_id}").json["stock"]
    return stock


# --- who may call ---------------------------------------------------------------------------


def test_the_service_token_opens_every_internal_endpoint(client: FlaskClient, product: dict[str, Any]) -> None:
    listed, reserved, released, access = (call(client, *endpoint, headers=SERVICE) for endpoint in calls(product["id"]))
    assert listed.status_code == 200
    assert listed.json == {
        "items": [
            {
                "id": product["id"],
                "sku": "MUG-1",
                "name": "Thing",
                "description": None,
                "price": "7.50",
                "currency": "USD",
                "stock": 5,
            }
        ]
    }
    assert (reserved.status_code, reserved.get_data()) == (204, b"")
    assert (released.status_code, released.get_data()) == (204, b"")
    assert access.status_code == 200
    assert set(access.json) == {"signing_key_id", "accepted_key_ids"}
    assert access.json["signing_key_id"] in access.json["accepted_key_ids"]


def test_no_token_a_wrong_one_and_users_tokens_are_all_401(
    client: FlaskClient, shop: Shop, product: dict[str, Any]
) -> None:
    refused = {
        "none": {},
        "wrong token": {"Authorization": f"Bearer {SERVICE_TOKEN[:-1]}x"},
        "longer token": {"Authorization": f"Bearer {SERVICE_TOKEN}x"},
        "other scheme": {"Authorization": f"Basic {SERVICE_TOKEN}"},
        "customer": shop.customer(),
        "admin": shop.admin(),
    }
    for who, headers in refused.items():
        for method, path, body in calls(product["id"]):
            response = call(client, method, path, body, headers)
            assert_problem(response, 401)
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), (who, method)
    assert stock_of(client, product["id"]) == 5


def test_the_token_is_checked_before_the_input(client: FlaskClient) -> None:
    assert_problem(call(client, "PUT", f"{INTERNAL}/reservations/not-a-uuid", {"lines": "nonsense"}), 401)


def test_without_a_service_token_setting_there_are_no_internal_endpoints(make_app: MakeApp) -> None:
    app = make_app()
    client = app.test_client()
    for method, path, body in calls(str(uuid.uuid4())):
        assert_problem(call(client, method, path, body, SERVICE), 404)


# --- input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("", "ids"),
        ("?ids=not-a-uuid", "ids[0]"),
        (f"?ids={uuid.uuid4()}&extra=1", "extra"),
        ("?" + "&".join(f"ids={uuid.uuid4()}" for _ in range(101)), "ids"),
    ],
    ids=["no ids", "malformed id", "unknown parameter", "too many ids"],
)
def test_a_bad_product_query_is_a_400_problem(client: FlaskClient, query: str, field: str) -> None:
    response = call(client, "GET", f"{INTERNAL}/products{query}", headers=SERVICE)
    assert field in invalid_fields(response)


LINE = {"product_id": str(uuid.UUID(int=1)), "quantity": 1}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lines": []}, "lines"),
        ({}, "lines"),
        ({"lines": [{**LINE, "quantity": 0}]}, "lines[0].quantity"),
        ({"lines": [{**LINE, "quantity": "2"}]}, "lines[0].quantity"),
        ({"lines": [{**LINE, "product_id": "nope"}]}, "lines[0].product_id"),
        ({"lines": [{"quantity": 1}]}, "lines[0].product_id"),
        ({"lines": [LINE], "note": "x"}, "note"),
    ],
    ids=["no lines", "no body fields", "zero quantity", "quantity as text", "bad id", "no id", "unknown field"],
)
def test_a_bad_reservation_is_a_400_problem(client: FlaskClient, body: dict[str, Any], field: str) -> None:
    response = call(client, "PUT", f"{INTERNAL}/reservations/{uuid.uuid4()}", body, SERVICE)
    assert field in invalid_fields(response)


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": ""}, {"reason": "a\nb"}, {"reason": "x" * 201}, {"reason": 3}],
    ids=["no reason", "empty", "control character", "too long", "not text"],
)
def test_a_bad_release_is_a_400_problem(client: FlaskClient, body: dict[str, Any]) -> None:
    response = call(client, "POST", f"{INTERNAL}/reservations/{uuid.uuid4()}/release", body, SERVICE)
    assert "reason" in invalid_fields(response)


def test_a_body_that_is_not_json_is_a_400_problem(client: FlaskClient) -> None:
    response = client.put(f"{INTERNAL}/reservations/{uuid.uuid4()}", data=b"{not json", headers=SERVICE)
    assert_problem(response, 400)


def test_a_malformed_reservation_id_names_nothing(client: FlaskClient) -> None:
    response = call(client, "PUT", f"{INTERNAL}/reservations/123", {"lines": [LINE]}, SERVICE)
    assert_problem(response, 404)


# --- refusals on the wire -------------------------------------------------------------------


def test_refusals_carry_a_code_and_the_published_errors_arguments(client: FlaskClient, product: dict[str, Any]) -> None:
    missing = str(uuid.uuid4())
    reservation = f"{INTERNAL}/reservations/{uuid.uuid4()}"

    not_found = call(client, "PUT", reservation, {"lines": [{"product_id": missing, "quantity": 1}]}, SERVICE)
    short = call(client, "PUT", reservation, {"lines": [{"product_id": product["id"], "quantity": 6}]}, SERVICE)
    call(client, "PUT", reservation, {"lines": [{"product_id": product["id"], "quantity": 1}]}, SERVICE)
    conflict = call(client, "PUT", reservation, {"lines": [{"product_id": product["id"], "quantity": 2}]}, SERVICE)

    assert members(assert_problem(not_found, 404), "code", "product_ids") == {
        "code": "product_not_found",
        "product_ids": [missing],
    }
    assert members(assert_problem(short, 409), "code", "product_id", "sku", "requested") == {
        "code": "insufficient_stock",
        "product_id": product["id"],
        "sku": "MUG-1",
        "requested": 6,
    }
    assert assert_problem(conflict, 409)["code"] == "reservation_conflict"


# --- not public -------------------------------------------------------------------------------


def test_internal_endpoints_are_not_in_the_openapi_document(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").json
    operations = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert operations == EXPECTED_OPERATIONS
    assert not any("internal" in path for path in spec["paths"])
