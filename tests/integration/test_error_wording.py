"""Validation errors speak the shop's words, not pydantic's, for every rule of every request model.

Every field of every model that validates a request body or query (the declared endpoints' and
the internal product endpoints') is fed values of every wrong kind, and what comes back must be
worded by ``infrastructure/validation_messages.py``: an error type it has no wording for, or a message
with pydantic's stock phrasing, fails. A new field, constraint or model is covered without
touching this file.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from pydantic import BaseModel, ValidationError

from app.config import Settings, read_settings, settings_problems
from contexts.product.http import ProductIdsQuery, ReleaseBody, ReservationBody
from infrastructure.http.openapi import ATTRIBUTE, Operation
from infrastructure.validation_messages import FALLBACK, WORDING, message_for
from tests.conftest import Shop, start_app, stop_app
from tests.problems import assert_problem

# Phrases of pydantic's (and pydantic-core's) own messages; none may reach a client.
STOCK_PHRASES = (
    "after validation",
    "Input should",
    "should be",
    "should have",
    "Field required",
    "Extra inputs",
    "Value error",
    "Assertion failed",
    "valid integer",
    "String should",
    "List should",
    "value is not a valid",
    "unable to parse",
)

# Endpoints only the shop's services call validate these without an ``endpoint(...)`` declaration.
INTERNAL_BODIES: tuple[type[BaseModel], ...] = (ReservationBody, ReleaseBody)
INTERNAL_QUERIES: tuple[type[BaseModel], ...] = (ProductIdsQuery,)

JSON_PROBES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2.5,
    10**30,
    -(10**30),
    "",
    " ",
    "x",
    "2",
    "not-a-uuid",
    "\x00\u202e",
    "x" * 6000,
    [],
    [None],
    [None] * 1001,
    {},
    {"unexpected": 1},
)
QUERY_PROBES: tuple[str, ...] = ("", " ", "x", "0", "-1", "2.5", "1" * 30, "\x00", "x" * 6000, "not-a-uuid")


def declared_models(tmp_path: Path) -> tuple[set[type[BaseModel]], set[type[BaseModel]]]:
    """The body and query models of every endpoint the app declares, and the internal ones."""
    app = start_app(tmp_path / "instance")
    try:
        operations = [getattr(view, ATTRIBUTE, None) for view in app.view_functions.values()]
    finally:
        stop_app(app)
    declared = [operation for operation in operations if isinstance(operation, Operation)]
    bodies = {operation.body for operation in declared if operation.body is not None}
    queries = {operation.query for operation in declared if operation.query is not None}
    return bodies | set(INTERNAL_BODIES), queries | set(INTERNAL_QUERIES)


def _resolve(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def invalid_documents(schema: dict[str, Any], definitions: dict[str, Any]) -> Iterator[Any]:
    """Documents that break a value of ``schema`` in every way the probes know, nested objects
    and list items included; each field is probed in turn, the others left out."""
    schema = _resolve(schema, definitions)
    yield from JSON_PROBES
    for variant in schema.get("anyOf", []):
        yield from invalid_documents(variant, definitions)
    if "items" in schema:
        for item in invalid_documents(schema["items"], definitions):
            yield [item]
    for name, field in schema.get("properties", {}).items():
        for value in invalid_documents(field, definitions):
            yield {name: value}


def errors_of(model: type[BaseModel], attempts: Iterator[Any], *, query: bool) -> Iterator[Any]:
    for attempt in attempts:
        try:
            if query:
                model.model_validate(attempt)
            else:
                model.model_validate_json(json.dumps(attempt))
        except ValidationError as error:
            yield from error.errors(include_url=False, include_input=False)


def query_attempts(model: type[BaseModel]) -> Iterator[dict[str, Any]]:
    """Query strings as Flask hands them over: text, or lists of text for repeated parameters."""
    yield {}
    for name, value in itertools.product(model.model_fields, QUERY_PROBES):
        yield {name: value}
        yield {name: [value]}
    for name in model.model_fields:
        yield {name: []}
        yield {name: ["x"] * 1001}


@pytest.fixture(scope="module")
def produced_errors(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    bodies, queries = declared_models(tmp_path_factory.mktemp("models"))
    found: list[Any] = []
    for model in bodies:
        schema = model.model_json_schema(mode="validation")
        found.extend(errors_of(model, invalid_documents(schema, schema.get("$defs", {})), query=False))
    for model in queries:
        found.extend(errors_of(model, query_attempts(model), query=True))
    return found


def test_the_probes_reach_the_models_rules(produced_errors: list[Any]) -> None:
    """Not a vacuous pass: the probes produce the kinds of errors the models are known for."""
    types = {error["type"] for error in produced_errors}

    assert {"missing", "extra_forbidden", "string_too_short", "too_short", "too_long", "less_than_equal"} <= types
    assert {"int_type", "string_type", "uuid_parsing", "literal_error", "value_error"} <= types


def test_every_error_type_the_models_produce_has_the_shops_wording(produced_errors: list[Any]) -> None:
    unworded = {error["type"] for error in produced_errors} - set(WORDING)

    assert not unworded, f"add a wording to infrastructure/validation_messages.py for {sorted(unworded)}"


def test_no_message_uses_pydantics_phrasing(produced_errors: list[Any]) -> None:
    messages = {message_for(error) for error in produced_errors}

    leaked = sorted(message for message in messages if any(phrase in message for phrase in STOCK_PHRASES))
    assert not leaked
    assert FALLBACK not in messages


def messages(response: Any) -> dict[str, str]:
    body = assert_problem(response, 400)
    return {error["field"]: error["message"] for error in body["errors"]}


def test_exact_messages_of_an_order(client: FlaskClient, shop: Shop) -> None:
    """The problem document's shape is the contract (field paths unchanged); the wording is pinned."""
    customer = shop.customer()

    assert messages(client.post("/api/v1/orders", json={"items": []}, headers=customer)) == {
        "items": "must list at least 1 item"
    }
    lines = {"items": [{"product_id": "nope", "quantity": 2.0, "note": "x"}, {"quantity": 0}]}
    assert messages(client.post("/api/v1/orders", json=lines, headers=customer)) == {
        "items[0].product_id": "must be an id: a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "items[0].quantity": 'must be a whole number (a JSON integer such as 2, not 2.0 or "2")',
        "items[0].note": "is not a field of this request",
        "items[1].product_id": "is required",
        "items[1].quantity": "must be at least 1",
    }


def test_exact_messages_of_a_registration_and_a_query(client: FlaskClient) -> None:
    registration = {"email": "no-at-sign", "password": "short", "name": "\u202eevil"}

    assert messages(client.post("/api/v1/users", json=registration)) == {
        "email": "must be an email address: an email address must have an @-sign",
        "password": "must be at least 8 characters long",
        "name": "must not contain control characters, line or paragraph separators or bidirectional controls",
    }
    assert messages(client.get("/api/v1/products?limit=101")) == {"limit": "must be at most 100"}


def test_exact_messages_of_a_product(client: FlaskClient, shop: Shop) -> None:
    product = {"sku": "-mug", "name": "Mug", "price": "12.345", "initial_stock": -1}

    assert messages(client.post("/api/v1/products", json=product, headers=shop.admin())) == {
        "sku": "must be 1 to 64 letters, digits, dots, underscores or hyphens, the first a letter or digit",
        "price": 'must be an amount such as "12.50" (text): up to 10 digits, then up to 2 after a point',
        "initial_stock": "must be at least 0",
    }


SETTING_PROBES = ("x", "-1", "9" * 30, "x" * 300)


def test_settings_errors_use_the_same_wording() -> None:
    """The settings are validated by pydantic too; their start-up errors speak like the API."""
    found: list[Any] = []
    for name, value in itertools.product(Settings.model_fields, SETTING_PROBES):
        try:
            read_settings({name: value})
        except ValidationError as error:
            found.extend(error.errors(include_url=False, include_input=False))
    messages = {message_for(error) for error in found}

    assert {error["type"] for error in found} <= set(WORDING)
    assert not sorted(message for message in messages if any(phrase in message for phrase in STOCK_PHRASES))
    assert settings_problems(_error_of({"web_workers": "0", "database_pool_size": "lots"})).splitlines() == [
        "  DATABASE_POOL_SIZE: must be a whole number",
        "  WEB_WORKERS: must be at least 1",
    ]


def _error_of(overrides: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        read_settings(overrides)
    return caught.value
