"""GET /api/v1/audit-log over the real app and SQLite: facts made through the API (registrations,
orders placed and cancelled) each appear once after delivery, however often they are delivered;
filters combine; keyset pages cover the log exactly; bad input is a 400 naming the field; only
administrators read it."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from app.containers import ApplicationContainer, databases
from tests.conftest import Shop
from tests.problems import assert_problem, invalid_fields

AUDIT_LOG = "/api/v1/audit-log"
ENTRY_FIELDS = {
    "id", "event_id", "event_type", "entity_type", "entity_id", "actor_id", "summary", "data", "recorded_at",
}
REGISTERED, PLACED, CANCELLED = "user.UserRegistered", "order.OrderPlaced", "order.OrderCancelled"

Headers = dict[str, str]


@dataclass(frozen=True)
class History:
    """What the API was asked to do: one admin, two customers, two orders, both cancelled."""

    admin: Headers
    customer: Headers
    admin_id: str
    first_id: str
    second_id: str
    first_order: str
    second_order: str


def user_id_of(client: FlaskClient, headers: Headers) -> str:
    user_id: str = client.get("/api/v1/users/me", headers=headers).json["id"]
    return user_id


def place(client: FlaskClient, headers: Headers, product_id: str, quantity: int) -> str:
    response = client.post("/api/v1/orders", json={"items": [{"product_id": product_id, "quantity": quantity}]},
                           headers=headers)
    assert response.status_code == 201, response.json
    order_id: str = response.json["id"]
    return order_id


def cancel(client: FlaskClient, headers: Headers, order_id: str) -> None:
    response = client.post(f"/api/v1/orders/{order_id}/cancel", headers=headers)
    assert response.status_code == 200, response.json


@pytest.fixture
def history(client: FlaskClient, shop: Shop, container: ApplicationContainer) -> History:
    admin = shop.admin()
    first, second = shop.customer(), shop.customer()
    product = shop.product(admin, price="12.50", initial_stock=10)
    first_order = place(client, first, product["id"], 2)
    second_order = place(client, second, product["id"], 1)
    cancel(client, first, first_order)
    cancel(client, admin, second_order)
    assert container.dispatcher().run_until_idle() > 0
    return History(
        admin=admin,
        customer=first,
        admin_id=user_id_of(client, admin),
        first_id=user_id_of(client, first),
        second_id=user_id_of(client, second),
        first_order=first_order,
        second_order=second_order,
    )


def page(client: FlaskClient, headers: Headers, **query: Any) -> dict[str, Any]:
    response = client.get(AUDIT_LOG, query_string=query, headers=headers)
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json
    return body


def entries(client: FlaskClient, headers: Headers, **query: Any) -> list[dict[str, Any]]:
    body = page(client, headers, limit=100, **query)
    assert body["next_cursor"] is None
    items: list[dict[str, Any]] = body["items"]
    return items


def facts(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(item["event_type"], item["entity_id"]) for item in items]


def cursor_of(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def test_every_fact_is_one_entry_with_the_documented_fields(client: FlaskClient, history: History) -> None:
    items = entries(client, history.admin)

    assert sorted(facts(items)) == sorted(
        [
            (REGISTERED, history.admin_id),
            (REGISTERED, history.first_id),
            (REGISTERED, history.second_id),
            (PLACED, history.first_order),
            (PLACED, history.second_order),
            (CANCELLED, history.first_order),
            (CANCELLED, history.second_order),
        ]
    )
    for item in items:
        assert set(item) == ENTRY_FIELDS
        assert str(uuid.UUID(item["id"])) == item["id"]
        assert str(uuid.UUID(item["event_id"])) == item["event_id"]
        assert item["recorded_at"].endswith("Z") or item["recorded_at"].endswith("+00:00")
        assert item["summary"]
    assert len({item["id"] for item in items}) == len({item["event_id"] for item in items}) == len(items)


def test_entries_name_the_entity_the_actor_and_the_events_data(client: FlaskClient, history: History) -> None:
    by_fact = {(item["event_type"], item["entity_id"]): item for item in entries(client, history.admin)}

    registered = by_fact[(REGISTERED, history.first_id)]
    assert (registered["entity_type"], registered["actor_id"]) == ("user", history.first_id)
    assert registered["data"]["user_id"] == history.first_id
    placed = by_fact[(PLACED, history.first_order)]
    assert (placed["entity_type"], placed["actor_id"]) == ("order", history.first_id)
    assert placed["data"]["total"] == "25.00"
    assert placed["data"]["lines"][0]["quantity"] == 2
    assert placed["data"]["lines"][0]["unit_price"] == "12.50"
    assert "25.00" in placed["summary"]
    by_owner = by_fact[(CANCELLED, history.first_order)]
    assert (by_owner["entity_type"], by_owner["actor_id"]) == ("order", history.first_id)
    by_admin = by_fact[(CANCELLED, history.second_order)]
    assert by_admin["actor_id"] is None
    assert by_admin["data"] == {
        "order_id": history.second_order, "user_id": history.second_id, "reason": "cancelled_by_admin",
    }


def test_newest_comes_first_and_one_orders_facts_keep_their_order(client: FlaskClient, history: History) -> None:
    items = facts(entries(client, history.admin))

    for order in (history.first_order, history.second_order):
        assert items.index((CANCELLED, order)) < items.index((PLACED, order))


def test_filters_by_event_type_entity_and_both(client: FlaskClient, history: History) -> None:
    def only(**query: Any) -> set[tuple[str, str]]:
        return set(facts(entries(client, history.admin, **query)))

    assert only(event_type=CANCELLED) == {(CANCELLED, history.first_order), (CANCELLED, history.second_order)}
    assert only(entity_id=history.first_order) == {(PLACED, history.first_order), (CANCELLED, history.first_order)}
    assert only(event_type=PLACED, entity_id=history.second_order) == {(PLACED, history.second_order)}
    assert only(entity_id=history.second_id) == {(REGISTERED, history.second_id)}
    assert only(event_type=REGISTERED, entity_id=history.first_order) == set()
    assert only(entity_id=str(uuid.uuid4())) == set()


@pytest.mark.parametrize("filtered_by", [None, "event_type", "entity_id"])
def test_pages_of_two_return_each_entry_exactly_once(
    client: FlaskClient, history: History, filtered_by: str | None
) -> None:
    filters = {"event_type": {"event_type": PLACED}, "entity_id": {"entity_id": history.first_order}}
    query = filters.get(filtered_by or "", {})
    everything = [item["id"] for item in entries(client, history.admin, **query)]

    seen: list[str] = []
    body = page(client, history.admin, limit=2, **query)
    while True:
        assert len(body["items"]) <= 2
        seen.extend(item["id"] for item in body["items"])
        if body["next_cursor"] is None:
            break
        assert len(body["items"]) == 2
        body = page(client, history.admin, limit=2, cursor=body["next_cursor"], **query)

    assert seen == everything
    assert len(set(seen)) == len(seen)


def test_the_default_page_is_twenty(client: FlaskClient, history: History) -> None:
    body = page(client, history.admin)

    assert len(body["items"]) == 7
    assert body["next_cursor"] is None


def test_delivering_again_adds_no_entry(client: FlaskClient, history: History, container: ApplicationContainer) -> None:
    before = entries(client, history.admin)
    assert container.dispatcher().run_until_idle() == 0

    # Make every audit delivery due again, as a crash before its completion was recorded would.
    redelivered = 0
    for name, database in databases(container).items():
        if name not in {"user", "order"}:
            continue
        with database.begin() as connection:
            redelivered += connection.execute(
                text(
                    f"UPDATE {name}_deliveries SET status = 'pending', claimed_until = NULL, completed_at = NULL "
                    "WHERE subscriber LIKE 'audit.%'"
                )
            ).rowcount
    assert redelivered == len(before)
    assert container.dispatcher().run_until_idle() >= redelivered

    assert entries(client, history.admin) == before


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"cursor": cursor_of([1, 2])}, "cursor"),
        ({"cursor": cursor_of({"id": 3})}, "cursor"),
        ({"cursor": cursor_of({"position": "3"})}, "cursor"),
        ({"cursor": cursor_of({"position": 0})}, "cursor"),
        ({"cursor": cursor_of({"position": True})}, "cursor"),
        ({"cursor": cursor_of({"position": 2**63})}, "cursor"),
        ({"cursor": cursor_of({"position": 2**70})}, "cursor"),
        ({"cursor": ""}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"event_type": "product.ProductCreated"}, "event_type"),
        ({"event_type": ""}, "event_type"),
        ({"entity_id": "not-a-uuid"}, "entity_id"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else value,
)
def test_bad_input_is_400_naming_the_field(client: FlaskClient, shop: Shop, query: dict[str, str], field: str) -> None:
    response = client.get(AUDIT_LOG, query_string=query, headers=shop.admin())

    assert invalid_fields(response) == {field}


def test_the_largest_position_a_cursor_can_hold_is_read_as_before_every_entry(
    client: FlaskClient, history: History
) -> None:
    body = page(client, history.admin, limit=100, cursor=cursor_of({"position": 2**63 - 1}))

    assert body["items"] == entries(client, history.admin)


def test_a_customer_is_403(client: FlaskClient, shop: Shop) -> None:
    assert_problem(client.get(AUDIT_LOG, headers=shop.customer()), 403, AUDIT_LOG)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}], ids=["anonymous", "forged"])
def test_without_a_valid_token_it_is_401(client: FlaskClient, headers: Headers) -> None:
    assert_problem(client.get(AUDIT_LOG, headers=headers), 401, AUDIT_LOG)
