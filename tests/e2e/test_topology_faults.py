"""Faults while customers keep placing orders, in the product-extracted topology (product in a
process of its own, everything else in a second one, events through RabbitMQ), on PostgreSQL.

- The product service is killed with SIGKILL mid-flow and started again: placing an order answers
  201, 409 or a fast 503 problem with ``Retry-After`` meanwhile, never a 500 or a dropped
  connection; afterwards no unit is lost or oversold (the stock plus what the 201 orders bought is
  the initial stock: reservations of the placements that failed are released, at the latest by the
  expiry sweep) and every 201 order's reservation is confirmed.
- The product service holds the reservations longer than their callers wait (a test transaction
  locks the stock row): 503s meanwhile, and the reservations that commit after their callers gave
  up are given back by the saga's release or the expiry sweep. (A kill alone rarely lands between
  a reservation's commit and its answer, so this is the test that makes reservations outlive
  their placement.)
- RabbitMQ's application is stopped for longer than the dispatcher's retry budget of a delivery
  and started again mid-flow: orders keep being placed (the outboxes grow), and afterwards, with
  no operator's help, every event has reached every subscriber, each effect once. Also with every
  context apart, where each subscriber but the relays' takes its events from the broker.

The verdicts are read from the databases, the mail folder and the broker, so they hold whatever
the fault cut short.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Backend, amqp_url_or_skip
from tests.e2e.server import API, REQUEST_TIMEOUT, bearer, register
from tests.e2e.topology import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    GATEWAY_ERROR_HEADER,
    PUBLISHERS,
    Topology,
    broker_stopped,
    mail_kind,
    recipient,
    running_topology,
    wait_until,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("rabbitmq"),
    pytest.mark.parametrize("backend", ["postgresql"], indirect=True),
]

CLIENTS = 4
INITIAL_STOCK = 100_000
ANSWERS_PER_PHASE = 20
PHASE_TIMEOUT = 60.0
PROBLEM_JSON = "application/problem+json"
# A client that was told to come back later does, a moment after (as Retry-After asks).
BACK_OFF_SECONDS = 0.05
# Expiry within the test: a reservation no order confirmed is released after 5 s, looked for
# every second. The breaker tries the product service again a second after it opened, and the
# claims the killed process held are taken over after two.
FAST_RECOVERY = {
    "RESERVATION_TTL_SECONDS": "5",
    "MAINTENANCE_INTERVAL_SECONDS": "1",
    "REMOTE_BREAKER_RESET_SECONDS": "1",
    "EVENTS_CLAIM_TIMEOUT_SECONDS": "2",
}
# The kill test keeps its callers' breaker open for an hour once it opens: any order placed after
# the restart can only have been let through by the breaker's readiness probe, whose log line
# (at INFO) the test looks for.
BREAKER_ENDED_ONLY_BY_ITS_PROBE = {**FAST_RECOVERY, "REMOTE_BREAKER_RESET_SECONDS": "3600", "LOG_LEVEL": "INFO"}
PROBE_ANSWERED = "remote.breaker_probe_answered"
STOCK_ROW_FOR_UPDATE = "SELECT available FROM product_stock WHERE product_id = :id FOR UPDATE"
# Attempts of a delivery before it is dead (the default, named here because the outage outlasts it).
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Answer:
    buyer: str
    quantity: int
    status: int
    headers: httpx.Headers
    body: Any
    asked: int = 0  # the flow's count of requests sent when this one was: orders the answers in time


@dataclass
class OrderFlow:
    """``CLIENTS`` customers placing orders of 1–3 units in a loop, each answer recorded, until
    stopped. A transport error (the gateway's connection dropped) is recorded as such."""

    url: str
    product_id: str
    customers: list[tuple[str, dict[str, str]]]
    answers: list[Answer] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _asked: int = 0

    def start(self) -> None:
        for index, customer in enumerate(self.customers):
            thread = threading.Thread(target=self._place_orders, args=(index, customer), name=f"buyer-{index}")
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT * 2)
            assert not thread.is_alive(), f"{thread.name} did not stop"

    def _place_orders(self, index: int, customer: tuple[str, dict[str, str]]) -> None:
        buyer, headers = customer
        with httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT) as client:
            attempt = 0
            while not self._stop.is_set():
                attempt += 1
                quantity = 1 + (index + attempt) % 3
                body = {"items": [{"product_id": self.product_id, "quantity": quantity}]}
                asked = self.mark()
                try:
                    response = client.post(f"{API}/orders", json=body, headers=headers)
                except httpx.TransportError as error:
                    with self._lock:
                        self.transport_errors.append(f"{type(error).__name__}: {error}")
                    continue
                self._record(Answer(buyer, quantity, response.status_code, response.headers, _body(response), asked))
                if response.status_code == 503:
                    time.sleep(BACK_OFF_SECONDS)

    def mark(self) -> int:
        """A point in the flow: how many requests have been sent so far (this one included, when
        a buyer marks its own). Answers to requests marked after a point were asked after it."""
        with self._lock:
            self._asked += 1
            return self._asked

    def _record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def count(self, status: int) -> int:
        with self._lock:
            return sum(1 for answer in self.answers if answer.status == status)

    def wait_for(self, status: int, more: int, what: str) -> None:
        """Until ``more`` answers with ``status`` than now have come."""
        target = self.count(status) + more
        wait_until(lambda: self.count(status) >= target, lambda: f"{what}: {self.summary()}", timeout=PHASE_TIMEOUT)

    def summary(self) -> str:
        with self._lock:
            statuses = Counter(answer.status for answer in self.answers)
            return f"answers {statuses}, transport errors {len(self.transport_errors)}"

    def placed_after(self, mark: int) -> int:
        """Orders placed (201) that were asked after ``mark``."""
        with self._lock:
            return sum(1 for answer in self.answers if answer.asked > mark and answer.status == 201)

    def placed(self) -> list[Answer]:
        return [answer for answer in self.answers if answer.status == 201]


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


@contextmanager
def shop_under_load(
    folder: Path, settings: Mapping[str, str], name: str = "product_extracted"
) -> Iterator[tuple[Topology, OrderFlow]]:
    """The topology with a product in stock and four customers ready to order (not yet
    ordering); everything stopped afterwards, the clients first."""
    amqp_url = amqp_url_or_skip()
    with running_topology(name, folder, amqp_url=amqp_url, settings=settings, migrated_by="the test") as topology:
        with httpx.Client(base_url=topology.url, timeout=REQUEST_TIMEOUT) as client:
            admin = bearer(client, ADMIN_EMAIL, ADMIN_PASSWORD)
            body = {
                "sku": f"SKU-{uuid.uuid4().hex[:10]}",
                "name": "Mug",
                "price": "4.50",
                "initial_stock": INITIAL_STOCK,
            }
            created = client.post(f"{API}/products", json=body, headers=admin)
            assert created.status_code == 201, created.text
            customers = [
                (address, register(client, address, "correct horse"))
                for address in (f"buyer{index}@example.com" for index in range(CLIENTS))
            ]
        flow = OrderFlow(topology.url, created.json()["id"], customers)
        try:
            yield topology, flow
        finally:
            flow.stop()


def stock_row(topology: Topology, product_id: str) -> tuple[int, int]:
    (row,) = topology.rows(
        "product", "SELECT available, reserved FROM product_stock WHERE product_id = :id", id=uuid.UUID(product_id)
    )
    return int(row[0]), int(row[1])


def reservations(topology: Topology) -> dict[str, str]:
    return {
        str(reservation_id): status
        for reservation_id, status in topology.rows("product", "SELECT id, status FROM product_reservations")
    }


def most_attempts_of_an_incomplete_delivery(topology: Topology) -> int:
    query = "SELECT coalesce(max(attempts), 0) FROM {}_deliveries WHERE status != 'done'"
    return max(int(topology.rows(context, query.format(context))[0][0]) for context in PUBLISHERS)


def every_order_took_effect(topology: Topology, orders: int) -> bool:
    """Every delivery done, every reservation decided, and as many confirmation mails, audit
    entries and counted purchases as orders (more would be duplicates: the assertions say so)."""
    confirmations = sum(1 for message in topology.mails() if mail_kind(message) == "order-confirmation")
    audited = topology.rows("audit", "SELECT count(*) FROM audit_entries WHERE event_type = 'order.OrderPlaced'")
    counted = topology.rows("recommendation", "SELECT coalesce(sum(orders), 0) FROM recommendation_purchases")
    decided = "reserved" not in reservations(topology).values()
    return topology.all_delivered() and decided and min(confirmations, audited[0][0], counted[0][0]) >= orders


def situation(topology: Topology, flow: OrderFlow) -> str:
    return (
        f"{flow.summary()}; deliveries {topology.deliveries()}; "
        f"reservations {Counter(reservations(topology).values())}; broker {topology.broker_messages()}"
    )


def test_killing_the_product_service_mid_flow_gives_503s_and_loses_no_stock(backend: Backend, tmp_path: Path) -> None:
    """Also the recovery: with the callers' breaker open for an hour, orders are placed again once
    the restarted product service answers ``/readyz`` — the breaker's probe, which the order
    process logs before the call it let through, ends the wait."""
    with shop_under_load(tmp_path, BREAKER_ENDED_ONLY_BY_ITS_PROBE) as (topology, flow):
        flow.start()
        flow.wait_for(201, ANSWERS_PER_PHASE, "orders placed before the kill")
        topology.kill("product")
        flow.wait_for(503, ANSWERS_PER_PHASE, "503s while the product service is down")
        order_log = topology.service_for("order").server.log_path
        logged_before_restart = order_log.stat().st_size
        topology.start_again("product")
        wait_until(lambda: ready(topology.service_for("product").url), "the restarted product service is ready")
        ready_at, became_ready = time.monotonic(), flow.mark()
        wait_until(lambda: flow.placed_after(became_ready) > 0, "an order placed once product is ready")
        first_order_seconds = time.monotonic() - ready_at
        # Read once the first order after the restart was answered: the probe's line, written
        # before the call it let through, must be there already.
        with order_log.open("rb") as log:
            log.seek(logged_before_restart)
            assert PROBE_ANSWERED.encode() in log.read(), topology.log_tails()
        flow.wait_for(201, ANSWERS_PER_PHASE, "orders placed after the restart")
        flow.stop()
        reservations_left = assert_no_failure_but_503s_and_stock_conserved(topology, flow)
        refused_once_ready = [a for a in flow.answers if a.asked > became_ready and a.status == 503]
        print(
            f"\nproduct killed mid-flow: {flow.summary()}; reservations {reservations_left}; once product was"
            f" ready: {len(refused_once_ready)} 503s, the first order placed after {first_order_seconds:.2f}s"
        )
        topology.assert_broker_drained()


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=REQUEST_TIMEOUT).status_code == 200
    except httpx.TransportError:
        return False


def test_a_product_service_slower_than_its_callers_strands_no_reservation(backend: Backend, tmp_path: Path) -> None:
    """Reservations that wait on the stock row longer than the callers' read timeout: the
    placements answer 503 while the reservations may still commit after their callers gave up;
    the saga's release or the expiry sweep must give that stock back."""
    settings = {**FAST_RECOVERY, "REMOTE_READ_TIMEOUT_SECONDS": "1"}
    with shop_under_load(tmp_path, settings) as (topology, flow):
        flow.start()
        flow.wait_for(201, ANSWERS_PER_PHASE, "orders placed before the stock row is held")
        with topology.holding_rows("product", STOCK_ROW_FOR_UPDATE, id=uuid.UUID(flow.product_id)):
            flow.wait_for(503, ANSWERS_PER_PHASE // 2, "503s while reservations wait on the stock row")
        flow.wait_for(201, ANSWERS_PER_PHASE, "orders placed once the row is free")
        flow.stop()
        reservations_left = assert_no_failure_but_503s_and_stock_conserved(topology, flow)
        print(f"\nslow product service: {flow.summary()}; reservations {reservations_left}")
        assert set(reservations_left) - {"confirmed"}, "no reservation outlived its caller: the test proved nothing"
        topology.assert_broker_drained()


def assert_no_failure_but_503s_and_stock_conserved(topology: Topology, flow: OrderFlow) -> Counter[str]:
    """Every answer a 201, 409 or 503 problem (with Retry-After), never a gateway error; once
    every reservation is decided: the orders stored are those answered 201, each confirmed, and
    the stock plus what they bought is the initial stock. Returns the reservations by status."""
    assert not flow.transport_errors, flow.transport_errors[:5]
    unexpected = [answer for answer in flow.answers if answer.status not in (201, 409, 503)]
    assert not unexpected, (flow.summary(), unexpected[:3])
    for answer in flow.answers:
        if answer.status != 201:
            assert answer.headers["content-type"].startswith(PROBLEM_JSON), answer
            assert GATEWAY_ERROR_HEADER not in answer.headers, answer
        if answer.status == 503:
            assert int(answer.headers["retry-after"]) >= 1, answer

    placed_ids = {answer.body["id"] for answer in flow.placed()}
    sold = sum(answer.quantity for answer in flow.placed())
    # Reservations of placements that failed are released (by the saga, or by the expiry sweep
    # once the product service answers); those of the 201 orders are confirmed by their event.
    wait_until(
        lambda: topology.all_delivered() and "reserved" not in reservations(topology).values(),
        lambda: situation(topology, flow),
    )
    stored = {str(order_id) for (order_id,) in topology.rows("order", "SELECT id FROM order_orders")}
    assert stored == placed_ids, "the orders stored are exactly the orders answered 201"
    statuses = reservations(topology)
    assert {order_id: statuses.get(order_id) for order_id in placed_ids} == dict.fromkeys(placed_ids, "confirmed")
    assert stock_row(topology, flow.product_id) == (INITIAL_STOCK - sold, sold), "nothing lost, nothing oversold"
    with httpx.Client(base_url=topology.url, timeout=REQUEST_TIMEOUT) as client:
        assert client.get(f"{API}/products/{flow.product_id}").json()["stock"] == INITIAL_STOCK - sold
    return Counter(statuses.values())


@pytest.mark.parametrize("topology_name", ["product_extracted", "all_apart"])
def test_restarting_rabbitmq_mid_flow_delivers_every_event_with_each_effect_once(
    topology_name: str, backend: Backend, tmp_path: Path
) -> None:
    # Reservations keep their default lifetime: the outage must not need the expiry sweep.
    settings = {"EVENTS_MAX_ATTEMPTS": str(MAX_ATTEMPTS)}
    with shop_under_load(tmp_path, settings, topology_name) as (topology, flow):
        restart_rabbitmq_mid_flow(topology, flow)


def restart_rabbitmq_mid_flow(topology: Topology, flow: OrderFlow) -> None:
    flow.start()
    flow.wait_for(201, ANSWERS_PER_PHASE, "orders placed before the outage")
    with broker_stopped():
        flow.wait_for(201, ANSWERS_PER_PHASE, "orders placed while RabbitMQ is down")
        wait_until(
            lambda: most_attempts_of_an_incomplete_delivery(topology) >= MAX_ATTEMPTS,
            "a delivery tried as often as a delivery may be",
            timeout=PHASE_TIMEOUT,
        )
        behind = topology.deliveries()
    flow.wait_for(201, ANSWERS_PER_PHASE, "orders placed after the outage")
    flow.stop()

    assert not flow.transport_errors, flow.transport_errors[:5]
    assert Counter(answer.status for answer in flow.answers) == {201: len(flow.answers)}, flow.summary()
    assert set(behind) - {"done"}, f"the outage should have left events to relay; deliveries {behind}"

    placed = flow.placed()
    wait_until(lambda: every_order_took_effect(topology, len(placed)), lambda: situation(topology, flow))
    placed_ids = {answer.body["id"] for answer in placed}
    confirmations = [message for message in topology.mails() if mail_kind(message) == "order-confirmation"]
    assert Counter(recipient(message) for message in confirmations) == Counter(answer.buyer for answer in placed)
    audited = Counter(
        str(entity_id)
        for (entity_id,) in topology.rows(
            "audit", "SELECT entity_id FROM audit_entries WHERE event_type = 'order.OrderPlaced'"
        )
    )
    assert audited == Counter(placed_ids)
    purchases = sum(
        count for (count,) in topology.rows("recommendation", "SELECT orders FROM recommendation_purchases")
    )
    assert purchases == len(placed)
    statuses_by_id = reservations(topology)
    assert {order_id: statuses_by_id.get(order_id) for order_id in placed_ids} == dict.fromkeys(placed_ids, "confirmed")
    assert set(topology.deliveries()) == {"done"}
    topology.assert_broker_drained()
    print(f"\nRabbitMQ restarted mid-flow: {len(placed)} orders; deliveries behind during the outage {behind}")
