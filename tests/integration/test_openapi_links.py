"""The document's links hold: each names a real operation and fills its inputs from fields the
response always has, and following them for real walks a product to an order, then to reading
and cancelling that order (the path Schemathesis's stateful tests take)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from infrastructure.http.openapi import Link, endpoint
from tests.conftest import Shop

BODY_EXPRESSION = re.compile(r"^\$response\.body#(/.*)$")
Operations = dict[str, tuple[str, str, dict[str, Any]]]


@pytest.fixture
def spec(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json
    return document


def operations(spec: dict[str, Any]) -> Operations:
    """operationId → (method, path, operation)."""
    return {
        operation["operationId"]: (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }


def links(spec: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(source operationId, status, link name, link) for every link of the document."""
    return [
        (operation["operationId"], status, name, link)
        for item in spec["paths"].values()
        for operation in item.values()
        for status, response in operation["responses"].items()
        for name, link in response.get("links", {}).items()
    ]


def expressions(value: Any) -> list[str]:
    """The runtime expressions in a link's parameters or (nested) request body."""
    if isinstance(value, str):
        return [value] if value.startswith("$") else []
    if isinstance(value, dict):
        return [found for item in value.values() for found in expressions(item)]
    if isinstance(value, list):
        return [found for item in value for found in expressions(item)]
    return []


def resolve(value: Any, body: Any) -> Any:
    """A link's value with every ``$response.body#/pointer`` replaced from ``body``."""
    if isinstance(value, str) and (match := BODY_EXPRESSION.match(value)):
        found = body
        for part in match.group(1).split("/")[1:]:
            found = found[int(part)] if isinstance(found, list) else found[part.replace("~1", "/").replace("~0", "~")]
        return found
    if isinstance(value, dict):
        return {key: resolve(item, body) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, body) for item in value]
    return value


def schema_of(spec: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = spec["components"]["schemas"][reference["$ref"].rsplit("/", 1)[1]]
    return schema


def test_the_document_has_the_links_of_the_ordering_workflow(spec: dict[str, Any]) -> None:
    found = {(source, status, target["operationId"]) for source, status, _, target in links(spec)}
    assert found >= {
        ("product_create_product", "201", "product_get_product"),
        ("product_create_product", "201", "product_revise_product"),
        ("product_create_product", "201", "product_adjust_stock"),
        ("product_create_product", "201", "order_place_order"),
        ("order_place_order", "201", "order_get_order"),
        ("order_place_order", "201", "order_cancel_order"),
        ("order_get_order", "200", "order_cancel_order"),
        ("order_cancel_order", "200", "order_get_order"),
    }


def test_every_link_leads_to_an_operation_of_the_document(spec: dict[str, Any]) -> None:
    known = operations(spec)
    for source, status, name, link in links(spec):
        assert link["operationId"] in known, (source, status, name)


def test_every_link_fills_exactly_the_path_parameters_of_its_target(spec: dict[str, Any]) -> None:
    known = operations(spec)
    for source, status, name, link in links(spec):
        _, _, target = known[link["operationId"]]
        path_parameters = {p["name"] for p in target["parameters"] if p["in"] == "path"}
        all_parameters = {p["name"] for p in target["parameters"]}
        given = set(link.get("parameters", {}))
        assert given <= all_parameters, (source, status, name, given - all_parameters)
        assert path_parameters <= given, (source, status, name, path_parameters - given)


def test_every_expression_reads_a_field_the_response_always_has(spec: dict[str, Any]) -> None:
    known = operations(spec)
    for source, status, name, link in links(spec):
        _, _, operation = known[source]
        response_schema = schema_of(spec, operation["responses"][status]["content"]["application/json"]["schema"])
        for expression in expressions([link.get("parameters", {}), link.get("requestBody")]):
            match = BODY_EXPRESSION.match(expression)
            assert match, (source, name, expression)
            field = match.group(1).split("/")[1]
            assert field in response_schema["required"], (source, name, expression)


def test_a_link_request_body_is_valid_for_its_target_once_filled_in(spec: dict[str, Any]) -> None:
    known = operations(spec)
    with_bodies = [(source, name, link) for source, _, name, link in links(spec) if "requestBody" in link]
    assert with_bodies, "no link carries a request body: this test would prove nothing"
    for source, name, link in with_bodies:
        _, _, target = known[link["operationId"]]
        schema = target["requestBody"]["content"]["application/json"]["schema"]
        filled = resolve(link["requestBody"], {"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6"})
        assert Draft202012Validator({**schema, "components": spec["components"]}).is_valid(filled), (source, name)


def test_following_the_links_orders_a_new_product_then_reads_and_cancels_the_order(
    client: FlaskClient, shop: Shop, spec: dict[str, Any]
) -> None:
    known = operations(spec)
    admin = shop.admin()

    def follow(source: str, status: int, name: str, body: dict[str, Any]) -> Any:
        link = spec["paths"][known[source][1]][known[source][0]]["responses"][str(status)]["links"][name]
        method, path, _ = known[link["operationId"]]
        for parameter, value in resolve(link.get("parameters", {}), body).items():
            path = path.replace(f"{{{parameter}}}", str(value))
        return client.open(path, method=method.upper(), json=resolve(link.get("requestBody"), body), headers=admin)

    product = shop.product(admin, initial_stock=2)
    read = follow("product_create_product", 201, "GetProduct", product)
    placed = follow("product_create_product", 201, "OrderProduct", product)
    assert read.status_code == 200 and read.json == product
    assert placed.status_code == 201, placed.json

    fetched = follow("order_place_order", 201, "GetOrder", placed.json)
    cancelled = follow("order_get_order", 200, "CancelOrder", fetched.json)
    again = follow("order_cancel_order", 200, "GetOrder", cancelled.json)
    assert fetched.status_code == 200 and fetched.json["id"] == placed.json["id"]
    assert fetched.json["items"][0]["product_id"] == product["id"]
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert again.json == cancelled.json


def test_a_link_from_an_undeclared_response_is_refused() -> None:
    with pytest.raises(ValueError, match="no declared response"):
        endpoint(summary="s", tag="t", responses={}, links={201: {"X": Link("somewhere")}})
