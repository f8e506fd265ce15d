"""The published events are the contract of API.md's table: their types, versions and ``data``
fields, the envelope's wire shape, the request id in its trace, nothing published for a refused
order, and the product context confirming a reservation once the order is placed.

The recorder sees events twice: in the outboxes, as stored envelopes (the wire shape, trace
included), and as a subscriber on the app's own bus once the dispatcher has delivered them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app.containers import ApplicationContainer, databases
from contexts.order.adapters.orm import OUTBOX as ORDER_OUTBOX
from contexts.order.events import OrderCancelled, OrderedLine, OrderPlaced
from contexts.product.adapters.orm import OUTBOX as PRODUCT_OUTBOX
from contexts.product.api import ReservationLine
from contexts.product.domain.model import ReservationStatus
from contexts.product.events import ProductCreated, StockReleased, StockReserved
from contexts.user.adapters.orm import OUTBOX as USER_OUTBOX
from contexts.user.events import UserRegistered
from infrastructure.serialization import to_data
from tests.conftest import Shop

ORDERS = "/api/v1/orders"
MONEY = re.compile(r"^\d+\.\d{2}$")
EVENT_TYPES: tuple[type[Any], ...] = (
    UserRegistered,
    ProductCreated,
    StockReserved,
    StockReleased,
    OrderPlaced,
    OrderCancelled,
)
CONTRACT = {
    "user.UserRegistered": (1, {"user_id", "email", "name"}),
    "product.ProductCreated": (1, {"product_id", "sku", "name", "price", "currency"}),
    "product.StockReserved": (1, {"reservation_id", "lines"}),
    "product.StockReleased": (1, {"reservation_id", "lines", "reason"}),
    "order.OrderPlaced": (1, {"order_id", "user_id", "lines", "total", "currency"}),
    "order.OrderCancelled": (1, {"order_id", "user_id", "reason"}),
}


OUTBOX_TABLES = {"user": USER_OUTBOX, "product": PRODUCT_OUTBOX, "order": ORDER_OUTBOX}


class Recorder:
    """Reads what the contexts' outboxes recorded (the envelopes exactly as they are stored and
    would be relayed), and is itself a subscriber of every event type."""

    def __init__(self, container: ApplicationContainer) -> None:
        self._container = container
        self.delivered: list[Any] = []
        self._seen: set[str] = set()

    def _recorded(self) -> list[dict[str, Any]]:
        envelopes: list[dict[str, Any]] = []
        for outbox in self._container.dispatcher().outboxes:
            table = OUTBOX_TABLES[outbox.context].outbox
            with databases(self._container)[outbox.context].session(write=False) as session:
                envelopes += session.scalars(select(table.c.envelope).order_by(table.c.position))
        return sorted(envelopes, key=lambda envelope: envelope["occurred_at"])

    def wire(self, envelope_type: str | None = None) -> list[dict[str, Any]]:
        """Envelopes recorded since the last :meth:`clear`, oldest first, optionally of one type."""
        return [
            envelope
            for envelope in self._recorded()
            if envelope["id"] not in self._seen and envelope_type in (None, envelope["type"])
        ]

    def data(self, envelope_type: str) -> list[dict[str, Any]]:
        return [envelope["data"] for envelope in self.wire(envelope_type)]

    def clear(self) -> None:
        self._seen |= {envelope["id"] for envelope in self._recorded()}
        self.delivered.clear()


@pytest.fixture
def recorder(container: ApplicationContainer) -> Recorder:
    recorder = Recorder(container)
    bus = container.event_bus()
    for event_type in EVENT_TYPES:
        bus.subscribe(
            event_type,
            lambda event, _delivery: recorder.delivered.append(event),
            name=f"test.recorder.{event_type.TYPE}",
        )
    return recorder


def place(client: FlaskClient, headers: dict[str, str], *lines: tuple[str, int], **extra: str) -> Any:
    items = [{"product_id": product_id, "quantity": quantity} for product_id, quantity in lines]
    return client.post(ORDERS, json={"items": items}, headers={**headers, **extra})


def by_product(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(lines, key=lambda line: line["product_id"])


def test_user_registered_v1(client: FlaskClient, recorder: Recorder) -> None:
    response = client.post("/api/v1/users", json={"email": "ada@example.com", "password": "long enough", "name": "Ada"})
    assert response.status_code == 201

    (envelope,) = recorder.wire("user.UserRegistered")
    assert envelope["version"] == 1
    assert envelope["data"] == {"user_id": response.json["id"], "email": response.json["email"], "name": "Ada"}
    assert "password" not in json.dumps(envelope)


def test_product_created_v1(shop: Shop, recorder: Recorder) -> None:
    admin = shop.admin()
    product = shop.product(admin, sku="CONTRACT-1", name="Lamp", price="12.5", currency="EUR")

    (envelope,) = recorder.wire("product.ProductCreated")
    assert envelope["version"] == 1
    assert envelope["data"] == {
        "product_id": product["id"],
        "sku": "CONTRACT-1",
        "name": "Lamp",
        "price": "12.50",
        "currency": "EUR",
    }


def test_order_placed_and_stock_reserved_v1(client: FlaskClient, shop: Shop, recorder: Recorder) -> None:
    admin = shop.admin()
    lamp = shop.product(admin, price="19.99")
    bulb = shop.product(admin, price="0.5")
    customer = shop.customer()
    recorder.clear()

    order = place(client, customer, (lamp["id"], 3), (bulb["id"], 2), (lamp["id"], 1)).json

    assert [envelope["type"] for envelope in recorder.wire()] == ["product.StockReserved", "order.OrderPlaced"]
    reserved, placed = recorder.wire()
    assert reserved["version"] == placed["version"] == 1
    assert set(reserved["data"]) == CONTRACT["product.StockReserved"][1]
    assert reserved["data"]["reservation_id"] == order["id"]
    assert by_product(reserved["data"]["lines"]) == by_product(
        [{"product_id": lamp["id"], "quantity": 4}, {"product_id": bulb["id"], "quantity": 2}]
    )
    assert {**placed["data"], "lines": by_product(placed["data"]["lines"])} == {
        "order_id": order["id"],
        "user_id": order["user_id"],
        "lines": by_product(
            [
                {"product_id": lamp["id"], "quantity": 4, "unit_price": "19.99", "sku": lamp["sku"], "name": "Thing"},
                {"product_id": bulb["id"], "quantity": 2, "unit_price": "0.50", "sku": bulb["sku"], "name": "Thing"},
            ]
        ),
        "total": "80.96",
        "currency": "USD",
    }


def test_order_cancelled_and_stock_released_v1(client: FlaskClient, shop: Shop, recorder: Recorder) -> None:
    admin = shop.admin()
    product = shop.product(admin)
    customer = shop.customer()
    order = place(client, customer, (product["id"], 2)).json
    recorder.clear()

    client.post(f"{ORDERS}/{order['id']}/cancel", headers=customer)

    assert [envelope["type"] for envelope in recorder.wire()] == ["order.OrderCancelled", "product.StockReleased"]
    cancelled, released = recorder.wire()
    assert cancelled["version"] == released["version"] == 1
    assert set(cancelled["data"]) == CONTRACT["order.OrderCancelled"][1]
    assert (cancelled["data"]["order_id"], cancelled["data"]["user_id"]) == (order["id"], order["user_id"])
    assert isinstance(cancelled["data"]["reason"], str) and cancelled["data"]["reason"]
    assert set(released["data"]) == CONTRACT["product.StockReleased"][1]
    assert released["data"]["reservation_id"] == order["id"]
    assert released["data"]["lines"] == [{"product_id": product["id"], "quantity": 2}]
    assert isinstance(released["data"]["reason"], str) and released["data"]["reason"]

    recorder.clear()
    assert client.post(f"{ORDERS}/{order['id']}/cancel", headers=customer).status_code == 200
    assert recorder.wire() == [], "a repeated cancel is no new fact"


def test_every_event_has_the_contracted_type_version_fields_and_wire_shape(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, recorder: Recorder
) -> None:
    admin = shop.admin()
    product = shop.product(admin, price="3.10")
    customer = shop.customer()
    order = place(client, customer, (product["id"], 3)).json
    client.post(f"{ORDERS}/{order['id']}/cancel", headers=admin)

    wire = recorder.wire()
    assert container.dispatcher().run_until_idle() >= len(wire)
    assert sorted(json.dumps(to_data(event), sort_keys=True) for event in recorder.delivered) == sorted(
        json.dumps(envelope["data"], sort_keys=True) for envelope in wire
    ), "subscribers get exactly what was recorded"
    assert {envelope["type"] for envelope in wire} == set(CONTRACT)
    assert len({envelope["id"] for envelope in wire}) == len(wire)
    for envelope in wire:
        version, fields = CONTRACT[envelope["type"]]
        assert set(envelope) == {"id", "type", "version", "occurred_at", "data", "trace"}
        assert str(uuid.UUID(envelope["id"])) == envelope["id"]
        assert envelope["version"] == version
        assert set(envelope["data"]) == fields, envelope["type"]
        assert envelope["occurred_at"].endswith("Z")
        assert datetime.fromisoformat(envelope["occurred_at"]).utcoffset() is not None
        assert isinstance(envelope["trace"], dict)
        assert json.loads(json.dumps(envelope)) == envelope, "only JSON primitives on the wire"
        for name, value in _fields(envelope["data"]):
            if name.endswith("_id"):
                assert isinstance(value, str) and str(uuid.UUID(value)) == value, (envelope["type"], name)
            if name in {"price", "total", "unit_price"}:
                assert isinstance(value, str) and MONEY.match(value), (envelope["type"], name, value)


def _fields(data: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for name, value in data.items():
        if isinstance(value, list):
            for line in value:
                yield from _fields(line)
        else:
            yield name, value


def test_the_request_id_travels_in_the_trace(client: FlaskClient, shop: Shop, recorder: Recorder) -> None:
    admin = shop.admin()
    product = shop.product(admin)
    customer = shop.customer()
    recorder.clear()

    response = place(client, customer, (product["id"], 1), **{"X-Request-ID": "checkout-42"})
    assert response.headers["X-Request-ID"] == "checkout-42"
    sent = recorder.wire()
    recorder.clear()
    generated = client.post(f"{ORDERS}/{response.json['id']}/cancel", headers=customer)

    assert [envelope["trace"] for envelope in sent] == [{"request_id": "checkout-42"}] * 2
    assert [envelope["trace"] for envelope in recorder.wire()] == [
        {"request_id": generated.headers["X-Request-ID"]}
    ] * 2


def test_an_event_outside_any_request_carries_no_request_id(
    client: FlaskClient, shop: Shop, recorder: Recorder
) -> None:
    """The request id of an earlier request must not leak into later work."""
    client.get("/api/v1/products", headers={"X-Request-ID": "earlier-request"})

    shop.admin()  # registers through the container directly, not over HTTP

    (envelope,) = recorder.wire("user.UserRegistered")
    assert envelope["trace"] == {}


def test_a_refused_order_publishes_nothing(client: FlaskClient, shop: Shop, recorder: Recorder) -> None:
    admin = shop.admin()
    plenty = shop.product(admin, initial_stock=10)
    scarce = shop.product(admin, initial_stock=1)
    euros = shop.product(admin, currency="EUR")
    customer = shop.customer()
    recorder.clear()

    short = place(client, customer, (plenty["id"], 1), (scarce["id"], 2))
    mixed = place(client, customer, (plenty["id"], 1), (euros["id"], 1))

    assert (short.status_code, mixed.status_code) == (409, 400)
    assert recorder.wire() == []


def test_the_reservation_is_confirmed_once_the_order_is_placed(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, recorder: Recorder
) -> None:
    admin = shop.admin()
    product = shop.product(admin)
    customer = shop.customer()

    order = place(client, customer, (product["id"], 1)).json

    assert "product.confirm_reservation" in container.event_bus().subscribers(OrderPlaced)
    assert recorder.data("order.OrderPlaced")[0]["order_id"] == order["id"]
    container.dispatcher().run_until_idle()
    with container.product.uow(write=False) as uow:
        reservation = uow.reservations.get(uuid.UUID(order["id"]))
    assert reservation is not None
    assert reservation.status is ReservationStatus.CONFIRMED


def test_an_order_placed_event_is_what_confirms_a_reservation(
    shop: Shop, container: ApplicationContainer, recorder: Recorder
) -> None:
    """Reserved through the product API alone, the reservation waits; the event confirms it."""
    product = shop.product(shop.admin())
    product_id = uuid.UUID(product["id"])
    reservation_id = uuid.uuid4()
    container.product.api().reserve(reservation_id, [ReservationLine(product_id, 1)])

    def status() -> ReservationStatus:
        with container.product.uow(write=False) as uow:
            reservation = uow.reservations.get(reservation_id)
        assert reservation is not None
        return reservation.status

    assert status() is ReservationStatus.RESERVED
    price = Decimal(product["price"])
    placed = OrderPlaced(
        order_id=reservation_id,
        user_id=uuid.uuid4(),
        lines=(OrderedLine(product_id, 1, price, product["sku"], product["name"]),),
        total=price,
        currency="USD",
    )
    with container.order.uow() as uow:  # recorded as the order context would record it
        container.order.outbox().record(uow.session, [(reservation_id, placed)])
        uow.commit()
    assert status() is ReservationStatus.RESERVED, "nothing happens until the event is delivered"
    container.dispatcher().run_until_idle()
    assert status() is ReservationStatus.CONFIRMED
