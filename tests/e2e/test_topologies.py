"""One shop scenario, run unchanged against each topology (one process; product extracted; every
context apart), on PostgreSQL, with RabbitMQ carrying the events between processes.

Customers register and log in, the admin creates products, customers order (one at a time, then
many at once, then a race for the last units), some orders are cancelled; once the events have
flowed, every consuming context must show each fact exactly once: one confirmation mail per order
to its buyer, one audit entry per registration, placement and cancel, purchases counted (those of
cancelled orders subtracted again), every reservation confirmed or released as its order says,
every delivery done, no dead letter on the
broker. Only the processes differ between the runs, so what passes in the monolith and fails
apart is a fault of the split, not of the scenario.

The scenario runs through a real nginx with the configuration ``shop gateway nginx`` generates for
the topology, which must also refuse the services' internal endpoints and serve the whole API's
one document from whichever process. Without nginx (``.ci/run`` installs it) the scenario runs
behind the test's gateway and only those front-door checks are skipped, saying so.

Each run prints what an order placement cost in that topology (median latency one at a time,
throughput from concurrent clients), measured through the same gateway in the same run.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api_docs import openapi_document
from tests.conftest import Backend, amqp_url_or_skip
from tests.e2e.nginx import NGINX
from tests.e2e.server import API, REQUEST_TIMEOUT, bearer, register
from tests.e2e.topology import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    TOPOLOGIES,
    Front,
    Topology,
    mail_kind,
    recipient,
    running_topology,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("rabbitmq")]

CUSTOMER_PASSWORD = "correct horse"
CUSTOMERS = 8
LATENCY_ORDERS = 40
THROUGHPUT_ORDERS = 240
THROUGHPUT_CLIENTS = 16
RACE_STOCK = 5
RACE_BUYERS = 20
BULK_STOCK = 10_000
BARRIER_TIMEOUT = 60.0
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Customer:
    email: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Placed:
    """An order as its buyer was told it was placed."""

    order_id: str
    buyer: str
    product_id: str
    quantity: int


@dataclass(frozen=True)
class Figures:
    median_latency_ms: float
    p95_latency_ms: float
    orders_per_second: float

    def __str__(self) -> str:
        return (
            f"order placement median {self.median_latency_ms:.1f} ms, p95 {self.p95_latency_ms:.1f} ms one at a time; "
            f"{self.orders_per_second:.0f} orders/s from {THROUGHPUT_CLIENTS} clients"
        )


# --- the scenario's steps ------------------------------------------------------------------


def create_product(client: httpx.Client, admin: dict[str, str], name: str, stock: int) -> str:
    body = {"sku": f"SKU-{uuid.uuid4().hex[:10]}", "name": name, "price": "4.50", "initial_stock": stock}
    response = client.post(f"{API}/products", json=body, headers=admin)
    assert response.status_code == 201, response.text
    product_id: str = response.json()["id"]
    return product_id


def order_body(product_id: str, quantity: int) -> dict[str, Any]:
    return {"items": [{"product_id": product_id, "quantity": quantity}]}


def place(client: httpx.Client, customer: Customer, product_id: str, quantity: int = 1) -> Placed:
    response = client.post(f"{API}/orders", json=order_body(product_id, quantity), headers=customer.headers)
    assert response.status_code == 201, (response.status_code, response.text)
    return Placed(response.json()["id"], customer.email, product_id, quantity)


def place_one_at_a_time(
    client: httpx.Client, customers: Sequence[Customer], product_id: str
) -> tuple[list[Placed], list[float]]:
    placed, latencies = [], []
    for index in range(LATENCY_ORDERS):
        started = time.perf_counter()
        placed.append(place(client, customers[index % len(customers)], product_id))
        latencies.append(time.perf_counter() - started)
    return placed, latencies


def place_concurrently(url: str, customers: Sequence[Customer], product_id: str) -> tuple[list[Placed], float]:
    """``THROUGHPUT_ORDERS`` orders from ``THROUGHPUT_CLIENTS`` clients; the wall time they took."""
    per_client = THROUGHPUT_ORDERS // THROUGHPUT_CLIENTS

    def client_orders(index: int) -> list[Placed]:
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client:
            return [place(client, customers[index % len(customers)], product_id) for _ in range(per_client)]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=THROUGHPUT_CLIENTS) as pool:
        batches = list(pool.map(client_orders, range(THROUGHPUT_CLIENTS)))
    return [placed for batch in batches for placed in batch], time.perf_counter() - started


def race_for_the_last_units(
    url: str, customers: Sequence[Customer], product_id: str
) -> list[tuple[Customer, httpx.Response]]:
    """``RACE_BUYERS`` buyers, connected and waiting at a barrier, each order one unit at once."""
    barrier = threading.Barrier(RACE_BUYERS)

    def buy(index: int) -> tuple[Customer, httpx.Response]:
        customer = customers[index % len(customers)]
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client:
            client.get(f"{API}/products/{product_id}").raise_for_status()  # connected before the race
            barrier.wait(timeout=BARRIER_TIMEOUT)
            response = client.post(f"{API}/orders", json=order_body(product_id, 1), headers=customer.headers)
            response.read()
            return customer, response

    with ThreadPoolExecutor(max_workers=RACE_BUYERS) as pool:
        return list(pool.map(buy, range(RACE_BUYERS)))


def cancel(client: httpx.Client, customer: Customer, order_id: str) -> None:
    response = client.post(f"{API}/orders/{order_id}/cancel", headers=customer.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"


def stock_of(client: httpx.Client, product_id: str) -> int:
    response = client.get(f"{API}/products/{product_id}")
    assert response.status_code == 200, response.text
    stock: int = response.json()["stock"]
    return stock


def audit_log(client: httpx.Client, admin: dict[str, str]) -> list[dict[str, Any]]:
    """Every audit entry, page by page."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"{API}/audit-log", params=params, headers=admin)
        assert response.status_code == 200, response.text
        page = response.json()
        entries.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return entries


# --- what must hold once the events have flowed --------------------------------------------


def settled(topology: Topology, placed: Sequence[Placed], cancelled: Sequence[Placed]) -> bool:
    """Every delivery done, and every order's mail written, audit entry made, purchase counted
    and reservation decided."""
    if not topology.all_delivered():
        return False
    confirmations = sum(1 for message in topology.mails() if mail_kind(message) == "order-confirmation")
    audited = topology.rows("audit", "SELECT count(*) FROM audit_entries WHERE event_type LIKE 'order.%'")[0][0]
    counted = topology.rows("recommendation", "SELECT coalesce(sum(orders), 0) FROM recommendation_purchases")[0][0]
    undecided = topology.rows("product", "SELECT count(*) FROM product_reservations WHERE status = 'reserved'")[0][0]
    return (
        confirmations >= len(placed)
        and audited >= len(placed) + len(cancelled)
        and counted >= len(placed) - len(cancelled)
        and not undecided
    )


def situation(topology: Topology) -> str:
    return (
        f"deliveries {topology.deliveries()}, mails {Counter(mail_kind(m) for m in topology.mails())}, "
        f"audit {topology.rows('audit', 'SELECT event_type, count(*) FROM audit_entries GROUP BY 1')}, "
        f"reservations {topology.rows('product', 'SELECT status, count(*) FROM product_reservations GROUP BY 1')}, "
        f"broker {topology.broker_messages()}"
    )


def assert_each_fact_once(
    topology: Topology,
    client: httpx.Client,
    admin: dict[str, str],
    placed: Sequence[Placed],
    cancelled: Sequence[Placed],
) -> None:
    users = {str(user_id): address for user_id, address in topology.rows("user", "SELECT id, email FROM user_users")}
    orders = {str(order_id) for (order_id,) in topology.rows("order", "SELECT id FROM order_orders")}
    assert orders == {order.order_id for order in placed}, "the orders stored are the orders answered 201"

    sent = topology.mails()
    confirmations = [message for message in sent if mail_kind(message) == "order-confirmation"]
    assert Counter(recipient(message) for message in confirmations) == Counter(order.buyer for order in placed)
    assert len({str(message["Message-ID"]) for message in confirmations}) == len(placed)
    welcomes = Counter(recipient(message) for message in sent if mail_kind(message) == "welcome")
    assert welcomes == Counter(users.values())

    audited = Counter((entry["event_type"], entry["entity_id"]) for entry in audit_log(client, admin))
    expected = Counter({("user.UserRegistered", user_id): 1 for user_id in users})
    expected.update({("order.OrderPlaced", order.order_id): 1 for order in placed})
    expected.update({("order.OrderCancelled", order.order_id): 1 for order in cancelled})
    assert audited == expected

    cancelled_ids = {order.order_id for order in cancelled}
    purchases = Counter[str]()
    for user_id, count in topology.rows("recommendation", "SELECT user_id, orders FROM recommendation_purchases"):
        purchases[users[str(user_id)]] += count
    # a cancelled order is counted and subtracted again
    assert purchases == Counter(order.buyer for order in placed if order.order_id not in cancelled_ids)

    statuses = {
        str(reservation_id): status
        for reservation_id, status in topology.rows("product", "SELECT id, status FROM product_reservations")
    }
    assert {order.order_id: statuses.get(order.order_id) for order in placed} == {
        order.order_id: "released" if order.order_id in cancelled_ids else "confirmed" for order in placed
    }

    assert set(topology.deliveries()) == {"done"}
    if len(topology.services) > 1:
        assert topology.broker_messages(), "events crossed no broker queue"


def assert_sold_exactly(client: httpx.Client, product_id: str, stock: int, orders: Sequence[Placed]) -> None:
    sold = sum(order.quantity for order in orders if order.product_id == product_id)
    assert stock_of(client, product_id) == stock - sold


def assert_teapot_recommended_to_those_without(
    client: httpx.Client, customers: Sequence[Customer], winners: Sequence[Placed], teapot: str
) -> None:
    """Everyone bought mugs; those who do not have the teapot (never ordered it, or cancelled the
    order) get it suggested, described by the catalog (through the product service when it runs
    apart); the others do not."""
    teapot_buyers = {order.buyer for order in winners}
    for customer in customers:
        response = client.get(f"{API}/users/me/recommendations", headers=customer.headers)
        assert response.status_code == 200, response.text
        suggested = {item["product_id"]: item["name"] for item in response.json()["items"]}
        if customer.email in teapot_buyers:
            assert teapot not in suggested, suggested
        else:
            assert suggested.get(teapot) == "Teapot", suggested


def figures_of(latencies: Sequence[float], concurrent: Sequence[Placed], elapsed: float) -> Figures:
    return Figures(
        median_latency_ms=statistics.median(latencies) * 1000,
        p95_latency_ms=statistics.quantiles(latencies, n=20)[-1] * 1000,
        orders_per_second=len(concurrent) / elapsed,
    )


# nginx running the generated configuration when installed; else the test's gateway, behind
# which the whole scenario still runs but for the front-door checks, which are nginx's.
FRONT: Front = "nginx" if NGINX else "test gateway"


def assert_one_front_door(topology: Topology, client: httpx.Client) -> None:
    """Through the gateway: the whole API's document whichever process answers it, and no way in
    to the services' internal endpoints, not even with the service token they take directly."""
    document = client.get("/openapi.json")
    assert document.status_code == 200 and document.json() == openapi_document()
    assert client.get("/docs").status_code == 200
    token = {"Authorization": f"Bearer {topology.services[0].env['SERVICE_TOKEN']}"}
    internal = "/internal/v1/product/products"
    direct = httpx.get(f"{topology.service_for('product').url}{internal}", headers=token, timeout=REQUEST_TIMEOUT)
    assert direct.status_code != 404, "the product service serves its internal endpoints to the service token"
    refused = client.get(internal, headers=token)
    assert refused.status_code == 404 and refused.headers["content-type"] == PROBLEM_JSON, refused.text


# --- the test ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("topology_name", list(TOPOLOGIES))
def test_the_same_scenario_passes_in_every_topology(topology_name: str, backend: Backend, tmp_path: Path) -> None:
    amqp_url = amqp_url_or_skip() if len(TOPOLOGIES[topology_name]) > 1 else None
    with (
        running_topology(topology_name, tmp_path, amqp_url=amqp_url, front=FRONT) as topology,
        httpx.Client(base_url=topology.url, timeout=REQUEST_TIMEOUT) as client,
    ):
        customers = [
            Customer(address, register(client, address, CUSTOMER_PASSWORD))
            for address in (f"buyer{index}@example.com" for index in range(CUSTOMERS))
        ]
        me = client.get(f"{API}/users/me", headers=customers[0].headers)
        assert me.status_code == 200 and me.json()["email"] == customers[0].email, me.text
        admin = bearer(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        bulk = create_product(client, admin, "Mug", BULK_STOCK)
        scarce = create_product(client, admin, "Teapot", RACE_STOCK)

        one_by_one, latencies = place_one_at_a_time(client, customers, bulk)
        concurrent, elapsed = place_concurrently(topology.url, customers, bulk)
        print(f"\n{topology_name} ({len(topology.services)} processes): {figures_of(latencies, concurrent, elapsed)}")

        answers = race_for_the_last_units(topology.url, customers, scarce)
        statuses = Counter(response.status_code for _, response in answers)
        assert statuses == {201: RACE_STOCK, 409: RACE_BUYERS - RACE_STOCK}, statuses
        for _, response in answers:
            if response.status_code == 409:
                assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
                assert response.json()["status"] == 409
        winners = [
            Placed(response.json()["id"], customer.email, scarce, 1)
            for customer, response in answers
            if response.status_code == 201
        ]
        placed = [*one_by_one, *concurrent, *winners]
        assert_sold_exactly(client, bulk, BULK_STOCK, placed)
        assert stock_of(client, scarce) == 0

        cancelled = [one_by_one[0], winners[0]]
        by_email = {customer.email: customer for customer in customers}
        for order in cancelled:
            cancel(client, by_email[order.buyer], order.order_id)
        kept = [order for order in placed if order not in cancelled]
        assert_sold_exactly(client, bulk, BULK_STOCK, kept)
        assert stock_of(client, scarce) == 1, "a cancel gives the stock back at once"

        wait_until(lambda: settled(topology, placed, cancelled), lambda: situation(topology))
        assert_each_fact_once(topology, client, admin, placed, cancelled)
        kept_winners = [order for order in winners if order not in cancelled]
        assert_teapot_recommended_to_those_without(client, customers, kept_winners, scarce)
        topology.assert_broker_drained()
        if FRONT != "nginx":
            pytest.skip("the scenario passed behind the test gateway; the front-door checks need nginx")
        assert_one_front_door(topology, client)
