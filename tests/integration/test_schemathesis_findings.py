"""Regressions for what fuzzing the API with Schemathesis found: places where the OpenAPI
document and the server disagreed. Each test asks the document (its JSON Schema, as a client
or a fuzzer would read it) and the server the same question, and expects the same answer.

- The login answered 429 (rate limit), a status its operation did not document.
- Text the server refuses for its control characters was valid in the document.
- A zero stock adjustment was valid in the document; the server refuses it.
- Any string was a valid currency in the document; the server takes ISO 4217 codes only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from werkzeug.test import TestResponse

from contexts.product.domain.currencies import CURRENCIES
from infrastructure.http.openapi import ATTRIBUTE
from infrastructure.http.rate_limit import MARKS as THROTTLE_MARKS
from tests.conftest import Shop
from tests.problems import invalid_fields

API = "/api/v1"
Documented = Callable[[Any], bool]


@pytest.fixture
def spec(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json
    return document


def documented_body(spec: dict[str, Any], method: str, path: str) -> Documented:
    """Whether a request body is valid for the operation, by the document's JSON Schema."""
    schema = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": spec["components"]})
    return lambda instance: bool(validator.is_valid(instance))


def documented_query(spec: dict[str, Any], method: str, path: str, name: str) -> Documented:
    parameter = next(p for p in spec["paths"][path][method]["parameters"] if p["name"] == name and p["in"] == "query")
    validator = Draft202012Validator(parameter["schema"])
    return lambda value: bool(validator.is_valid(value))


def assert_documented_response(spec: dict[str, Any], method: str, path: str, response: TestResponse) -> None:
    documented = spec["paths"][path][method]["responses"]
    assert str(response.status_code) in documented, (response.status_code, sorted(documented))
    assert response.mimetype in documented[str(response.status_code)]["content"]
    for header in documented[str(response.status_code)]["headers"]:
        assert header in response.headers, header


# --- the login's 429 --------------------------------------------------------------------------


def test_the_login_documents_the_429_it_answers_when_throttled(
    client: FlaskClient, shop: Shop, spec: dict[str, Any]
) -> None:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    shop.customer(email)
    answers = [client.post(f"{API}/auth/token", json={"email": email, "password": "wrong password"}) for _ in range(30)]

    throttled = [response for response in answers if response.status_code == 429]
    assert throttled, sorted({response.status_code for response in answers})
    assert_documented_response(spec, "post", f"{API}/auth/token", throttled[0])
    assert spec["paths"][f"{API}/auth/token"]["post"]["responses"]["429"]["headers"]["Retry-After"]


def test_every_throttled_operation_documents_429(app: Flask, spec: dict[str, Any]) -> None:
    """Whatever view gets a rate limit, its 429 is documented (the throttle mark is read by ``endpoint``)."""
    throttled = {
        operation_id
        for endpoint_name, view in app.view_functions.items()
        if getattr(view, ATTRIBUTE, None) is not None and bool(getattr(view, THROTTLE_MARKS, ()))
        for operation_id in [endpoint_name.replace(".", "_")]
    }
    documenting_429 = {
        operation["operationId"]
        for item in spec["paths"].values()
        for operation in item.values()
        if "429" in operation["responses"]
    }
    assert throttled, "no throttled operation: this test would prove nothing"
    assert documenting_429 == throttled


# --- control characters -----------------------------------------------------------------------

# Line and paragraph separators, C1 controls and bidirectional controls: refused everywhere.
INVISIBLE_BREAKS = [
    "a\u2028b", "a\u2029b", "a\x80b", "a\x85b", "a\x9fb", "a\u202eb", "a\u2066b", "a\u200fb", "a\u061cb"
]  # fmt: skip
# Nothing to show: a name needs a character other than white space and invisible ones.
NOTHING_TO_SHOW = ["   ", "\u200b\u200b", "\u3000"]
SINGLE_LINE_REFUSED = ["a\x00b", "a\x02b", "a\tb", "a\nb", "a\x1fb", "a\x7fb", *INVISIBLE_BREAKS]
SINGLE_LINE_ACCEPTED = ["Enamel mug", "Ünïcödé ✓", "a\u00a0b", "a\xa1b", "שלום", "a\u200db"]
MULTI_LINE_REFUSED = ["a\x00b", "a\x02b", "a\x0bb", "a\x0cb", "a\x1bb", "a\x7fb", *INVISIBLE_BREAKS]
MULTI_LINE_ACCEPTED = ["line one\nline two", "tab\tseparated", "windows\r\nline", "plain"]


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        *((v, False) for v in SINGLE_LINE_REFUSED + NOTHING_TO_SHOW),
        *((v, True) for v in SINGLE_LINE_ACCEPTED),
    ],
    ids=repr,
)
def test_a_product_name_is_valid_in_the_document_exactly_when_the_server_takes_it(
    client: FlaskClient, shop: Shop, spec: dict[str, Any], value: str, accepted: bool
) -> None:
    admin = shop.admin()
    body = {"sku": f"SKU-{uuid.uuid4().hex[:10]}", "name": value, "price": "1.00"}

    response = client.post(f"{API}/products", json=body, headers=admin)

    assert documented_body(spec, "post", f"{API}/products")(body) is accepted
    assert response.status_code == 201 if accepted else invalid_fields(response) == {"name"}


@pytest.mark.parametrize(
    ("value", "accepted"),
    [*((v, False) for v in MULTI_LINE_REFUSED), *((v, True) for v in MULTI_LINE_ACCEPTED)],
    ids=repr,
)
def test_a_description_is_valid_in_the_document_exactly_when_the_server_takes_it(
    client: FlaskClient, shop: Shop, spec: dict[str, Any], value: str, accepted: bool
) -> None:
    admin = shop.admin()
    product = shop.product(admin)
    body = {"description": value}

    response = client.patch(f"{API}/products/{product['id']}", json=body, headers=admin)

    assert documented_body(spec, "patch", f"{API}/products/{{product_id}}")(body) is accepted
    assert response.status_code == 200 if accepted else invalid_fields(response) == {"description"}


@pytest.mark.parametrize("value", ["a\x02b", "a\nb", "a\u2028b", "a\x85b", "a\u202eb"], ids=repr)
def test_every_single_line_text_field_documents_that_it_refuses_control_characters(
    client: FlaskClient, shop: Shop, spec: dict[str, Any], value: str
) -> None:
    """A stock adjustment's reason, a customer's name and the product search, beside the product name."""
    admin = shop.admin()
    product = shop.product(admin)
    reason = {"delta": 1, "reason": value}
    registration = {"email": f"{uuid.uuid4().hex[:12]}@example.com", "password": "correct horse", "name": value}

    adjusted = client.post(f"{API}/products/{product['id']}/stock-adjustments", json=reason, headers=admin)
    registered = client.post(f"{API}/users", json=registration)
    searched = client.get(f"{API}/products", query_string={"q": value})

    assert not documented_body(spec, "post", f"{API}/products/{{product_id}}/stock-adjustments")(reason)
    assert not documented_body(spec, "post", f"{API}/users")(registration)
    assert not documented_query(spec, "get", f"{API}/products", "q")(value)
    assert invalid_fields(adjusted) == {"reason"}
    assert invalid_fields(registered) == {"name"}
    assert invalid_fields(searched) == {"q"}


# --- a zero stock adjustment -----------------------------------------------------------------


@pytest.mark.parametrize(("delta", "accepted"), [(0, False), (1, True), (-1, True)])
def test_a_stock_delta_is_valid_in_the_document_exactly_when_the_server_takes_it(
    client: FlaskClient, shop: Shop, spec: dict[str, Any], delta: int, accepted: bool
) -> None:
    admin = shop.admin()
    product = shop.product(admin, initial_stock=5)
    body = {"delta": delta}

    response = client.post(f"{API}/products/{product['id']}/stock-adjustments", json=body, headers=admin)

    assert documented_body(spec, "post", f"{API}/products/{{product_id}}/stock-adjustments")(body) is accepted
    assert response.status_code == 200 if accepted else invalid_fields(response) == {"delta"}


# --- currencies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "accepted"),
    [("EUR", True), ("JPY", True), ("usd", False), ("XXX", False), ("XAU", False), ("EURO", False), ("", False)],
)
def test_a_currency_is_valid_in_the_document_exactly_when_the_server_takes_it(
    client: FlaskClient, shop: Shop, spec: dict[str, Any], currency: str, accepted: bool
) -> None:
    admin = shop.admin()
    body = {"sku": f"SKU-{uuid.uuid4().hex[:10]}", "name": "Thing", "price": "1.00", "currency": currency}

    response = client.post(f"{API}/products", json=body, headers=admin)

    assert documented_body(spec, "post", f"{API}/products")(body) is accepted
    if accepted:
        assert response.status_code == 201 and response.json["currency"] == currency
    else:
        assert invalid_fields(response) == {"currency"}


def test_the_documented_currencies_are_the_ones_the_catalog_takes(spec: dict[str, Any]) -> None:
    currency = spec["components"]["schemas"]["NewProductBody"]["properties"]["currency"]
    assert set(currency["enum"]) == CURRENCIES
    assert currency["default"] in CURRENCIES


@pytest.mark.parametrize("q", ["\tmug", "mug\t", "\t\u00a0\u008a"], ids=repr)
def test_a_search_with_a_control_character_that_stripping_would_remove_is_still_400(
    client: FlaskClient, q: str
) -> None:
    """Found by schemathesis: the documented pattern refuses tabs anywhere; the server stripped them first."""
    assert invalid_fields(client.get("/api/v1/products", query_string={"q": q})) == {"q"}


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("   ", False), ("\u00a0", False), ("a" + " " * 100, False), ("  Ada  ", True), ("a" * 100, True)],
    ids=repr,
)
def test_a_user_name_is_valid_in_the_document_exactly_when_the_server_takes_it(
    client: FlaskClient, spec: dict[str, Any], value: str, accepted: bool
) -> None:
    """Names used to be trimmed before their length check: blank names were schema-valid but
    refused, and padded over-long ones schema-invalid but taken."""
    body = {"email": f"{uuid.uuid4().hex[:10]}@example.com", "password": "long enough", "name": value}

    response = client.post(f"{API}/users", json=body)

    assert documented_body(spec, "post", f"{API}/users")(body) is accepted
    if accepted:
        assert response.status_code == 201 and response.json is not None
        assert response.json["name"] == value.strip()
    else:
        assert invalid_fields(response) == {"name"}
