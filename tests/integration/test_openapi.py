"""The API describes itself: a valid OpenAPI 3.1 document covering every endpoint of API.md."""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from app.api_docs import DESCRIPTION, TITLE, openapi_document
from app.cli import main as shop
from app.registry import CONTEXTS, callers_of
from infrastructure.http.openapi import build_document
from tests.conftest import MakeApp, Shop

EXPECTED_OPERATIONS = {
    ("post", "/api/v1/users"),
    ("post", "/api/v1/auth/token"),
    ("get", "/api/v1/users/me"),
    ("post", "/api/v1/products"),
    ("get", "/api/v1/products"),
    ("get", "/api/v1/products/{product_id}"),
    ("patch", "/api/v1/products/{product_id}"),
    ("post", "/api/v1/products/{product_id}/stock-adjustments"),
    ("post", "/api/v1/orders"),
    ("get", "/api/v1/orders"),
    ("get", "/api/v1/orders/{order_id}"),
    ("post", "/api/v1/orders/{order_id}/cancel"),
    ("get", "/api/v1/audit-log"),
    ("get", "/api/v1/admin/orders"),
    ("get", "/api/v1/admin/users"),
    ("get", "/api/v1/users/me/recommendations"),
    ("get", "/healthz"),
    ("get", "/readyz"),
}


def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json
    return body


def test_the_document_is_valid_openapi_3_1(client: FlaskClient) -> None:
    spec = document(client)
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_every_operation_of_the_api_is_documented_and_nothing_else(client: FlaskClient) -> None:
    spec = document(client)
    operations = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert operations == EXPECTED_OPERATIONS


def test_protected_operations_declare_bearer_security_and_their_401(client: FlaskClient) -> None:
    spec = document(client)
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            public = (method, path) in {
                ("post", "/api/v1/users"),
                ("post", "/api/v1/auth/token"),
                ("get", "/api/v1/products"),
                ("get", "/api/v1/products/{product_id}"),
                ("get", "/healthz"),
                ("get", "/readyz"),
            }
            assert ("security" not in operation) is public, (method, path)
            assert ("401" in operation["responses"]) is (not public or path == "/api/v1/auth/token"), (method, path)


def test_errors_are_documented_as_problem_details(client: FlaskClient) -> None:
    spec = document(client)
    placing = spec["paths"]["/api/v1/orders"]["post"]
    for status in ("400", "401", "409", "413", "422", "503"):
        content = placing["responses"][status]["content"]
        assert content == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
    assert {"Idempotency-Key"} <= {p["name"] for p in placing["parameters"] if p["in"] == "header"}


def test_a_documented_response_schema_matches_what_is_served(client: FlaskClient, shop: Shop) -> None:
    """The response models both shape the JSON and document it: the served keys are the documented ones."""
    spec = document(client)
    product = shop.product(shop.admin())
    schema = spec["components"]["schemas"]["ProductOut"]
    assert set(product) == set(schema["properties"]) == set(schema["required"])


def test_the_shop_openapi_command_prints_the_same_document(app: Flask, client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(shop, ["openapi"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == document(client)


# Each placement of test_topologies' processes, and a process serving each context alone.
PLACEMENTS = ("product", "user,order,notification,audit,recommendation", *CONTEXTS[:1], *CONTEXTS[2:])


def apart_settings(served: str) -> dict[str, Any]:
    """What a process serving only ``served`` needs besides (the services it calls are never called)."""
    hosted = set(served.split(","))
    settings: dict[str, Any] = {
        "served_contexts": served,
        "events_broker_url": "amqp://guest:guest@127.0.0.1:5672//",
        "service_token": "s" * 40,
        "token_secret": "t" * 40,
    }
    if hosted & set(callers_of("product")) and "product" not in hosted:
        settings["product_service_url"] = "http://127.0.0.1:9"
    if hosted & set(callers_of("user")) and "user" not in hosted:
        settings["user_service_url"] = "http://127.0.0.1:9"
    return settings


def monoliths_own_document(monolith: Flask) -> dict[str, Any]:
    """The document of every endpoint the monolith's ``create_app()`` registered, built from
    the app itself: an endpoint it registers beside the contexts' blueprints and ops.bp, which
    the whole-API document (built apart, once per process) would miss, shows as a difference."""
    return build_document(monolith, title=TITLE, version=version("modular-shop"), description=DESCRIPTION)


@pytest.mark.parametrize("served", PLACEMENTS)
def test_every_process_documents_the_whole_api_whatever_it_serves(
    served: str, app: Flask, client: FlaskClient, make_app: MakeApp
) -> None:
    """Behind a gateway clients see one API whichever process answers /openapi.json: the
    document of a process serving only some contexts is the monolith's, and so is what `shop
    openapi` prints there."""
    apart = make_app(**apart_settings(served))
    whole = monoliths_own_document(app)

    assert openapi_document() == whole
    assert document(client) == whole
    assert document(apart.test_client()) == whole
    printed = apart.test_cli_runner().invoke(shop, ["openapi"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == whole
