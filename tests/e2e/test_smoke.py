"""One shopper's whole journey through the HTTP API."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import Shop


def test_register_buy_and_cancel(client: FlaskClient, shop: Shop) -> None:
    admin = shop.admin()
    product = shop.product(admin, price="12.50", initial_stock=3)
    customer = shop.customer()

    placed = client.post(
        "/api/v1/orders", json={"items": [{"product_id": product["id"], "quantity": 2}]}, headers=customer
    )
    assert placed.status_code == 201
    assert placed.json["total"] == "25.00"
    assert client.get(f"/api/v1/products/{product['id']}").json["stock"] == 1

    cancelled = client.post(f"/api/v1/orders/{placed.json['id']}/cancel", headers=customer)
    assert cancelled.json["status"] == "cancelled"
    assert client.get(f"/api/v1/products/{product['id']}").json["stock"] == 3
