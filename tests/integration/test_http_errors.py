"""Cross-cutting HTTP behaviour from API.md: every error is an RFC 9457 problem, request ids travel on
every response, oversized and malformed bodies are refused cleanly, and no input or bug leaks a 5xx
with internals."""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.factory import container_of
from tests.conftest import Backend, Shop, start_app, stop_app
from tests.problems import PROBLEM_JSON, assert_problem

API = "/api/v1"



@dataclass
class World:
    """A shop with one admin, two customers, a product with stock 5 and an order by the first customer."""

    client: FlaskClient
    admin: dict[str, str]
    customer: dict[str, str]
    stranger: dict[str, str]
    product_id: str
    order_id: str


@pytest.fixture
def world(client: FlaskClient, shop: Shop) -> World:
    admin = shop.admin()
    customer = shop.customer()
    product = shop.product(admin, sku="WORLD-1", initial_stock=6)
    order = client.post(
        f"{API}/orders", json={"items": [{"product_id": product["id"], "quantity": 1}]}, headers=customer
    )
    assert order.status_code == 201, order.json
    return World(client, admin, customer, shop.customer(), product["id"], order.json["id"])


def _bodies_in_use(world: World) -> list[tuple[str, str, dict[str, str]]]:
    """Every endpoint that reads a JSON body, with credentials that get it past authorization."""
    return [
        ("POST", f"{API}/users", {}),
        ("POST", f"{API}/auth/token", {}),
        ("POST", f"{API}/products", world.admin),
        ("PATCH", f"{API}/products/{world.product_id}", world.admin),
        ("POST", f"{API}/products/{world.product_id}/stock-adjustments", world.admin),
        ("POST", f"{API}/orders", world.customer),
    ]


# --- the problem shape, for every error status the API uses --------------------------------------


def _reused_idempotency_key(world: World) -> TestResponse:
    key = {"Idempotency-Key": "reuse-me", **world.customer}
    first = {"items": [{"product_id": world.product_id, "quantity": 1}]}
    assert world.client.post(f"{API}/orders", json=first, headers=key).status_code == 201
    second = {"items": [{"product_id": world.product_id, "quantity": 2}]}
    return world.client.post(f"{API}/orders", json=second, headers=key)


ERROR_SCENARIOS: dict[str, tuple[int, str, Callable[[World], TestResponse]]] = {
    "invalid body": (400, f"{API}/users", lambda w: w.client.post(f"{API}/users", json={})),
    "invalid query": (400, f"{API}/products", lambda w: w.client.get(f"{API}/products?limit=0")),
    "no token": (401, f"{API}/users/me", lambda w: w.client.get(f"{API}/users/me")),
    "bad login": (
        401,
        f"{API}/auth/token",
        lambda w: w.client.post(f"{API}/auth/token", json={"email": "x@example.com", "password": "nope-nope"}),
    ),
    "customer on admin endpoint": (
        403,
        f"{API}/products",
        lambda w: w.client.post(f"{API}/products", json={"sku": "S", "name": "n", "price": "1"}, headers=w.customer),
    ),
    "unknown api route": (404, f"{API}/nowhere", lambda w: w.client.get(f"{API}/nowhere")),
    "unknown root route": (404, "/nowhere", lambda w: w.client.get("/nowhere")),
    "unknown api version": (404, "/api/v2/products", lambda w: w.client.get("/api/v2/products")),
    "unknown product": (
        404,
        f"{API}/products/00000000-0000-0000-0000-000000000000",
        lambda w: w.client.get(f"{API}/products/00000000-0000-0000-0000-000000000000"),
    ),
    "someone else's order": (
        404,
        "order",
        lambda w: w.client.get(f"{API}/orders/{w.order_id}", headers=w.stranger),
    ),
    "wrong method": (405, f"{API}/products", lambda w: w.client.delete(f"{API}/products")),
    "duplicate sku": (
        409,
        f"{API}/products",
        lambda w: w.client.post(
            f"{API}/products", json={"sku": "WORLD-1", "name": "n", "price": "1.00"}, headers=w.admin
        ),
    ),
    "insufficient stock": (
        409,
        f"{API}/orders",
        lambda w: w.client.post(
            f"{API}/orders", json={"items": [{"product_id": w.product_id, "quantity": 999}]}, headers=w.customer
        ),
    ),
    "body too large": (
        413,
        f"{API}/users",
        lambda w: w.client.post(f"{API}/users", data=b" " * (1024 * 1024 + 1), content_type="application/json"),
    ),
    "idempotency key reused": (422, f"{API}/orders", _reused_idempotency_key),
}


@pytest.mark.parametrize("scenario", list(ERROR_SCENARIOS))
def test_every_error_is_a_problem_document(world: World, scenario: str) -> None:
    status, path, send = ERROR_SCENARIOS[scenario]
    response = send(world)
    expected_path = f"{API}/orders/{world.order_id}" if path == "order" else path
    assert_problem(response, status, expected_path)
    assert response.headers.get("X-Request-ID")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", f"{API}/products", "POST"),
        ("PUT", f"{API}/users/me", "GET"),
        ("GET", f"{API}/auth/token", "POST"),
        ("DELETE", f"{API}/products/00000000-0000-0000-0000-000000000000", "PATCH"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_wrong_method_is_405_problem_with_allow(client: FlaskClient, method: str, path: str, allowed: str) -> None:
    response = client.open(path, method=method)
    assert_problem(response, 405, path)
    assert allowed in [item.strip() for item in response.headers.get("Allow", "").split(",")]


# --- body size limit -------------------------------------------------------------------------


SMALL_LIMIT = 2048


@pytest.fixture
def small_app(tmp_path: Path, backend: Backend) -> Iterator[Flask]:
    app = start_app(tmp_path / "small", max_content_length=SMALL_LIMIT)
    yield app
    stop_app(app)


def _registration_of_size(size: int) -> bytes:
    body = json.dumps(
        {"email": f"{uuid.uuid4().hex[:10]}@example.com", "password": "long enough", "name": "Sized"}
    ).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


def test_a_body_at_the_limit_is_accepted(small_app: Flask) -> None:
    response = small_app.test_client().post(
        f"{API}/users", data=_registration_of_size(SMALL_LIMIT), content_type="application/json"
    )
    assert response.status_code == 201, response.get_data(as_text=True)


@pytest.mark.parametrize("path", [f"{API}/users", f"{API}/auth/token"])
def test_a_body_over_the_limit_is_413_problem(small_app: Flask, path: str) -> None:
    response = small_app.test_client().post(
        path, data=_registration_of_size(SMALL_LIMIT + 1), content_type="application/json"
    )
    assert_problem(response, 413, path)


def test_an_oversized_admin_request_is_413_problem(small_app: Flask) -> None:
    client = small_app.test_client()
    admin = Shop(client, container_of(small_app)).admin()
    body = {"sku": "BIG-1", "name": "Big", "price": "1.00", "description": "d" * (SMALL_LIMIT + 1)}
    assert_problem(client.post(f"{API}/products", json=body, headers=admin), 413, f"{API}/products")
    assert client.get(f"{API}/products").json["items"] == []


def test_a_streamed_body_without_length_over_the_limit_is_413(small_app: Flask) -> None:
    """A chunked upload carries no Content-Length; the limit must hold while reading it."""
    response = small_app.test_client().post(
        f"{API}/users",
        input_stream=io.BytesIO(_registration_of_size(SMALL_LIMIT * 4)),
        content_type="application/json",
        # As a server hands over a chunked body (the test client would add a Content-Length).
        environ_overrides={"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"},
    )
    assert_problem(response, 413, f"{API}/users")


# --- malformed bodies ------------------------------------------------------------------------


MALFORMED = {
    "truncated": b'{"email": "a@example.com"',
    "no value": b'{"email": }',
    "single quotes": b"{'email': 'a@example.com'}",
    "trailing comma": b'{"delta": 1,}',
    "two documents": b'{"delta": 1}{"delta": 2}',
    "list": b"[]",
    "list of object": b'[{"delta": 1}]',
    "string": b'"{\\"delta\\": 1}"',
    "null": b"null",
    "number": b"7",
    "boolean": b"true",
    "empty": b"",
    "whitespace": b"  \n\t ",
    "bare word": b"delta=1",
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_body_that_is_not_a_json_object_is_400_problem(world: World, name: str) -> None:
    for method, path, headers in _bodies_in_use(world):
        response = world.client.open(
            path, method=method, data=MALFORMED[name], content_type="application/json", headers=headers
        )
        assert_problem(response, 400, path)


# --- request ids -----------------------------------------------------------------------------


SANE_IDS = ["abc-123", "0d6e3b52-7a1f-4c2e-9b8d-5f4a3c2b1e0d", "req_1.2:3"]  # fixed: they name tests
GENERATED = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


@pytest.mark.parametrize("request_id", SANE_IDS)
def test_a_sane_request_id_is_echoed_on_success_and_error(world: World, request_id: str) -> None:
    header = {"X-Request-ID": request_id}
    responses = {
        "list": world.client.get(f"{API}/products", headers=header),
        "health": world.client.get("/healthz", headers=header),
        "created": world.client.post(
            f"{API}/products", json={"sku": "RID-1", "name": "n", "price": "1.00"}, headers={**header, **world.admin}
        ),
        "400": world.client.post(f"{API}/users", data=b"{", headers=header),
        "401": world.client.get(f"{API}/users/me", headers=header),
        "404": world.client.get("/nowhere", headers=header),
        "405": world.client.delete(f"{API}/products", headers=header),
    }
    assert [r.status_code for r in responses.values()] == [200, 200, 201, 400, 401, 404, 405]
    for name, response in responses.items():
        assert response.headers.get("X-Request-ID") == request_id, name


@pytest.mark.parametrize(
    "offered",
    [
        "x" * 200,
        "y" * 1000,
        "has space",
        "new\nline",
        "carriage\rreturn",
        "tab\there",
        "<script>",
        "caf\u00e9",
        'quote"d',
        "",
    ],
    ids=repr,
)
def test_an_insane_request_id_is_replaced(client: FlaskClient, offered: str) -> None:
    environ = {"HTTP_X_REQUEST_ID": offered}
    ok = client.get(f"{API}/products", environ_overrides=environ)
    failed = client.get(f"{API}/products/unknown", environ_overrides=environ)

    assert ok.status_code == 200 and failed.status_code == 404
    for response in (ok, failed):
        generated = response.headers.get("X-Request-ID")
        assert generated and generated != offered
        assert GENERATED.fullmatch(generated), generated
    assert ok.headers["X-Request-ID"] != failed.headers["X-Request-ID"]


def test_a_request_id_is_generated_when_none_is_sent(client: FlaskClient) -> None:
    ids = {client.get("/healthz").headers.get("X-Request-ID") for _ in range(3)}
    ids.add(client.get("/nowhere").headers.get("X-Request-ID"))
    assert None not in ids
    assert len(ids) == 4


# --- bugs never leak -------------------------------------------------------------------------

SECRET_SQL = "SELECT password_hash FROM user_users WHERE email = 'victim@example.com'"
LEAKS = ("Traceback", 'File "', "password_hash", "user_users", "victim@example.com", "SELECT", "Error:", ".py")


def _raise_bug() -> Any:
    raise RuntimeError(f"Traceback (most recent call last): {SECRET_SQL}")


def _raise_integrity_error() -> Any:
    raise sqlalchemy.exc.IntegrityError(SECRET_SQL, {"email": "victim@example.com"}, Exception("UNIQUE failed"))


def _raise_lost_database() -> Any:
    raise sqlalchemy.exc.OperationalError(SECRET_SQL, {"email": "victim@example.com"}, Exception("disk I/O error"))


def _raise_key_error() -> Any:
    return {}["password_hash"]


@pytest.mark.parametrize(
    ("view", "status"),
    [(_raise_bug, 500), (_raise_integrity_error, 500), (_raise_key_error, 500), (_raise_lost_database, 503)],
    ids=["runtime-error", "sql-integrity-error", "key-error", "lost-database"],
)
def test_an_unexpected_exception_is_a_problem_without_internals(
    app: Flask, view: Callable[[], Any], status: int
) -> None:
    app.add_url_rule(f"{API}/_boom", "boom", view, methods=["GET", "POST"])
    client = app.test_client()

    for response in (
        client.get(f"{API}/_boom", headers={"X-Request-ID": "boom-1"}),
        client.post(f"{API}/_boom", json={"a": 1}, headers={"X-Request-ID": "boom-1"}),
    ):
        assert_problem(response, status, f"{API}/_boom")
        text = response.get_data(as_text=True)
        for leak in LEAKS:
            assert leak not in text, leak
        assert response.headers.get("X-Request-ID") == "boom-1"
        if status == 503:
            assert response.headers.get("Retry-After")

    # The app keeps serving after a bug.
    assert client.get("/healthz").status_code == 200


# --- nasty input never yields a 5xx ----------------------------------------------------------


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


NASTY_VALUES = [
    "1e400",
    "-1e400",
    "1e-400",
    "1" + "0" * 400,
    "-" + "9" * 400,
    "NaN",
    "Infinity",
    "-Infinity",
    "-0",
    "0.0",
    "9223372036854775808",
    "-9223372036854775809",
    "2147483648",
    "1000000000",
    "true",
    "null",
    "[]",
    "{}",
    '""',
    json.dumps("\x00"),
    json.dumps("a\x00b"),
    '"\\ud800"',
    '"\\udfff\\ud800"',
    json.dumps("x" * 10_000),
    json.dumps("\u00e9" * 10_000, ensure_ascii=False),
    json.dumps("\U0001f4a5" * 5_000),
    json.dumps("\U0001f4a5" * 5_000, ensure_ascii=False),
    json.dumps("\u202eevil\u202c"),
    json.dumps("e\u0301" * 1_000),
    json.dumps("\uff11\uff12.\uff10\uff10"),
    json.dumps("' OR 1=1 --"),
    json.dumps("%_\\"),
    json.dumps("../../etc/passwd"),
    json.dumps(" 1.00 "),
    json.dumps("\r\n\t"),
    json.dumps(str(uuid.UUID(int=0))),
    _deep(1_000),
    '{"a":' * 1_000 + "1" + "}" * 1_000,
    json.dumps(["x"] * 10_000),
    json.dumps({f"k{n}": n for n in range(1_000)}),
]

NASTY_DOCUMENTS = [
    b"\x00",
    b"\x00" * 1_000,
    b'{"delta": 1}\x00',
    b'{"name": "a\x00b"}',
    b"\xff\xfe\xfd",
    b'{"name": "\xff\xfe"}',
    b"\xef\xbb\xbf{}",
    _deep(100_000).encode(),
    ('{"a":' * 100_000).encode(),
    b"1e400",
    b"NaN",
    b'"\\ud800"',
    json.dumps({"k" * 10_000: 1}).encode(),
    json.dumps({f"k{n}": n for n in range(10_000)}).encode(),
]


def _template(path: str, world: World) -> dict[str, Any]:
    """A body the endpoint would accept, so each nasty value is tried where a real one belongs."""
    if path.endswith("/users"):
        return {"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": "password1", "name": "N"}
    if path.endswith("/auth/token"):
        return {"email": "nobody@example.com", "password": "password1"}
    if path.endswith("/stock-adjustments"):
        return {"delta": 1, "reason": "r"}
    if path.endswith("/products"):
        return {
            "sku": f"N-{uuid.uuid4().hex[:8]}",
            "name": "n",
            "description": "d",
            "price": "1.00",
            "currency": "USD",
            "initial_stock": 1,
        }
    if "/products/" in path:
        return {"name": "n", "description": "d", "price": "1.00"}
    if path.endswith("/orders"):
        return {"items": [{"product_id": world.product_id, "quantity": 1}]}
    return {"reason": "r"}


def _nasty_bodies(template: Callable[[], dict[str, Any]]) -> Iterator[bytes]:
    """The template with each field in turn (and one unexpected field) set to each nasty value,
    then whole nasty documents. A fresh template each time, so no body fails merely as a duplicate."""
    for field in [*template(), "unexpected"]:
        for value in NASTY_VALUES:
            others = {k: v for k, v in template().items() if k != field}
            yield (json.dumps(others)[:-1] + ("," if others else "") + f'"{field}": {value}}}').encode()
    items = template().get("items")
    if items:
        for field in ("product_id", "quantity"):
            for value in NASTY_VALUES:
                item = {k: v for k, v in items[0].items() if k != field}
                yield (f'{{"items": [{json.dumps(item)[:-1]}, "{field}": {value}}}]}}').encode()
        yield json.dumps({"items": items * 10_000}).encode()
    yield from NASTY_DOCUMENTS


def _writers(world: World) -> dict[str, tuple[str, str, dict[str, str]]]:
    endpoints = [*_bodies_in_use(world), ("POST", f"{API}/orders/{world.order_id}/cancel", world.customer)]
    return dict(zip(WRITERS, endpoints, strict=True))


WRITERS = [
    "POST users",
    "POST auth/token",
    "POST products",
    "PATCH products/{id}",
    "POST products/{id}/stock-adjustments",
    "POST orders",
    "POST orders/{id}/cancel",
]


@pytest.mark.parametrize("writer", WRITERS)
def test_nasty_bodies_never_cause_a_server_error(world: World, writer: str) -> None:
    method, path, headers = _writers(world)[writer]
    failures: list[str] = []
    for body in _nasty_bodies(lambda: _template(path, world)):
        response = world.client.open(path, method=method, data=body, content_type="application/json", headers=headers)
        if response.status_code >= 500 or (response.status_code >= 400 and response.mimetype != PROBLEM_JSON):
            failures.append(f"{response.status_code} for {body[:120]!r}")
    assert not failures, "\n".join(failures[:20])
    assert world.client.get(f"{API}/products/{world.product_id}").status_code == 200


@pytest.mark.parametrize(
    "key",
    ["k" * 256, "k" * 10_000, "new\nline", "\x00", "\x7f", ""],
    ids=["256", "10k", "newline", "nul", "del", "empty"],
)
def test_nasty_idempotency_keys_are_refused_not_crashed_on(world: World, key: str) -> None:
    response = world.client.post(
        f"{API}/orders",
        json={"items": [{"product_id": world.product_id, "quantity": 1}]},
        headers=world.customer,
        environ_overrides={"HTTP_IDEMPOTENCY_KEY": key},
    )
    assert_problem(response, 400, f"{API}/orders")
