"""Concurrent ordering against real ``shop serve`` processes, on each backend: SQLite files,
and PostgreSQL schemas when ``SHOP_TEST_POSTGRES_URL`` names a server.

Many buyers order the last units of one product at the same instant: as threads against one
server, as client processes against three servers sharing one instance's databases, and as
hundreds of buyers in client processes against ``shop serve --prod`` with four gunicorn
workers. Exactly the stock is sold, never more; every loser gets a 409 problem; nothing
answers 5xx; the stock and the buyers' order lists agree with the answers.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Backend, database_for, prepare_instance
from tests.e2e.buyers import Answer, Buyer, buy_in_threads, client_process
from tests.e2e.server import API, REQUEST_TIMEOUT, ShopServer, bearer, register, shop_env, start_all

pytestmark = pytest.mark.slow

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin password"
CUSTOMER_PASSWORD = "correct horse"
STOCK = 25
BUYERS = 40
CLIENT_PROCESS_TIMEOUT = 120.0


# --- set-up -------------------------------------------------------------------------------


@pytest.fixture
def instance(tmp_path: Path, backend: Backend) -> Path:
    """A fresh instance folder with migrated databases on ``backend`` (set up first, so the
    servers' environment names it) and an admin."""
    prepare_instance(tmp_path / "instance", admin=(ADMIN_EMAIL, ADMIN_PASSWORD))
    return tmp_path / "instance"


def servers(stack: ExitStack, instance: Path, count: int) -> list[ShopServer]:
    env = shop_env(instance)
    logs = instance.parent / "logs"
    running = [ShopServer(env, logs / f"server-{n}.log", cwd=instance.parent) for n in range(count)]
    for server in running:
        stack.push(server.__exit__)  # stopped, and its log shown on failure, whatever happens
    start_all(running)
    return running


def stock_product_and_buyers(
    urls: Sequence[str], quantities: Sequence[int], *, stock: int = STOCK, buyers: int = BUYERS
) -> tuple[str, list[Buyer]]:
    """A product with ``stock`` units and ``buyers`` customers, each to order one quantity."""
    with httpx.Client(base_url=urls[0], timeout=REQUEST_TIMEOUT) as client:
        admin = bearer(client, ADMIN_EMAIL, ADMIN_PASSWORD)
        created = client.post(
            f"{API}/products",
            json={"sku": "LAST-UNITS", "name": "Scarce thing", "price": "9.99", "initial_stock": stock},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        assert created.json()["stock"] == stock

    # One after the other: concurrent writers on SQLite would only queue on its busy timeout.
    # With several servers each buyer orders from the server after the one that issued its
    # token, so the servers must share the signing secret too.
    ready = []
    with ExitStack() as closing:
        clients = [closing.enter_context(httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT)) for url in urls]
        for index in range(buyers):
            headers = register(clients[index % len(urls)], f"buyer-{index}@example.com", CUSTOMER_PASSWORD)
            ready.append(Buyer(index, headers, quantities[index % len(quantities)], urls[(index + 1) % len(urls)]))
    return str(created.json()["id"]), ready


# --- the verdict ----------------------------------------------------------------------------


def assert_exactly_the_stock_was_sold(
    answers: Sequence[Answer], buyers: Sequence[Buyer], product_id: str, url: str, logs: str, *, stock: int = STOCK
) -> dict[str, Any]:
    assert sorted(answer.buyer for answer in answers) == [buyer.index for buyer in buyers]
    unexpected = [answer for answer in answers if answer.status not in (201, 409)]
    assert not unexpected, (
        f"{len(unexpected)} answers other than 201/409, statuses {sorted(a.status for a in unexpected)}, "
        f"first: {unexpected[0]}\n{logs}"
    )

    sold = [answer for answer in answers if answer.status == 201]
    refused = [answer for answer in answers if answer.status == 409]
    for answer in sold:
        assert answer.body["status"] == "placed"
        assert [(item["product_id"], item["quantity"]) for item in answer.body["items"]] == [
            (product_id, answer.quantity)
        ]
    for answer in refused:
        assert answer.content_type.startswith("application/problem+json"), answer
        assert answer.body["status"] == 409
        assert "LAST-UNITS" in answer.body["detail"], answer.body
    units_sold = sum(answer.quantity for answer in sold)

    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as client:
        left = client.get(f"{API}/products/{product_id}").json()["stock"]
        listed: list[dict[str, Any]] = []
        for buyer in buyers:
            page = client.get(f"{API}/orders", params={"limit": 100}, headers=buyer.headers)
            assert page.status_code == 200, page.text
            listed += page.json()["items"]

    assert units_sold <= stock and left >= 0, f"oversold: {units_sold} units sold of {stock}, stock now {left}"
    assert units_sold + left == stock, f"sold {units_sold} and {left} left of {stock}"
    assert refused, "every buyer was served, so the race for the last units never happened"
    # Nobody was refused while enough was left for them: the stock only ever went down.
    assert all(left < answer.quantity for answer in refused), (left, sorted({a.quantity for a in refused}))
    assert {order["id"] for order in listed} == {answer.body["id"] for answer in sold}
    assert sum(item["quantity"] for order in listed for item in order["items"]) == units_sold

    seconds = sorted(answer.answered_at - answer.sent_at for answer in answers)
    return {
        "requests": len(answers),
        "201": len(sold),
        "409": len(refused),
        "units_sold": units_sold,
        "left": left,
        "slowest_s": round(seconds[-1], 3),
        "median_s": round(seconds[len(seconds) // 2], 3),
        "burst_s": round(max(a.answered_at for a in answers) - min(a.sent_at for a in answers), 3),
    }


def race_in_processes(stack: ExitStack, buyers: Sequence[Buyer], product_id: str, processes: int) -> list[Answer]:
    """Share the buyers out among client processes, each racing its buyers as threads."""
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(len(buyers))
    results = spawn.Queue()
    clients = [
        spawn.Process(target=client_process, args=(buyers[n::processes], product_id, barrier, results))
        for n in range(processes)
    ]
    stack.callback(results.close)
    stack.callback(_reap, clients)
    for client in clients:
        client.start()
    answers: list[Answer] = []
    for _ in clients:
        outcome, payload = results.get(timeout=CLIENT_PROCESS_TIMEOUT)
        assert outcome == "ok", f"a client process failed:\n{payload}"
        answers += payload
    return answers


def all_logs(running: Sequence[ShopServer]) -> str:
    return "\n".join(server.log_tail(max_chars=3000) for server in running)


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("quantities", [(1,), (3,), (2, 3)], ids=["one-each", "three-each", "two-or-three"])
def test_threads_ordering_the_last_units_sell_exactly_the_stock(instance: Path, quantities: tuple[int, ...]) -> None:
    with ExitStack() as stack:
        (server,) = servers(stack, instance, 1)
        product_id, buyers = stock_product_and_buyers([server.url], quantities)

        answers = buy_in_threads(buyers, product_id, threading.Barrier(len(buyers)))

        figures = assert_exactly_the_stock_was_sold(answers, buyers, product_id, server.url, all_logs([server]))
        assert server.is_running()
    print(f"\nthreads {quantities}: {figures}")


@pytest.mark.parametrize("quantities", [(1,), (2, 3)], ids=["one-each", "two-or-three"])
def test_processes_on_one_instance_sell_exactly_the_stock(instance: Path, quantities: tuple[int, ...]) -> None:
    """Three servers share the instance's databases; four client processes race them round-robin."""
    processes = 4
    with ExitStack() as stack:
        running = servers(stack, instance, 3)
        product_id, buyers = stock_product_and_buyers([server.url for server in running], quantities)

        answers = race_in_processes(stack, buyers, product_id, processes)

        figures = assert_exactly_the_stock_was_sold(answers, buyers, product_id, running[0].url, all_logs(running))
        assert all(server.is_running() for server in running)
        served = {
            server.url: sum(1 for answer in answers if buyers[answer.buyer].url == server.url) for server in running
        }
    assert all(count > 0 for count in served.values()), served
    print(f"\nprocesses {quantities}: {figures} per_server={served}")


class ConnectionGauge:
    """Samples how many connections the shop named ``application_name`` holds open to PostgreSQL
    (none on SQLite): by name, as other tests may be connected to the same server meanwhile."""

    def __init__(self, instance: Path, application_name: str) -> None:
        self._application_name = application_name
        self._database = database_for("order", instance)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample)
        self.peak = 0

    def _count(self) -> int:
        with self._database.engine.connect() as connection:
            query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            return int(connection.exec_driver_sql(query, (self._application_name,)).scalar_one())

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._count())

    def __enter__(self) -> ConnectionGauge:
        if self._database.engine.dialect.name == "postgresql":
            self._sampler.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._sampler.ident is not None:
            self._sampler.join()
        self._database.dispose()


def test_four_gunicorn_workers_sell_exactly_the_stock_to_hundreds_of_buyers(instance: Path) -> None:
    """``shop serve --prod`` with four worker processes; 300 buyers in four client processes
    race for 100 units, one or two each."""
    stock, processes = 100, 4
    application_name = f"concurrent-orders-{uuid.uuid4().hex[:8]}"
    env = shop_env(
        instance,
        DATABASE_APPLICATION_NAME=application_name,
        WEB_WORKERS="4",
        WEB_THREADS="4",
        EVENTS_WORKERS="2",
        DATABASE_POOL_SIZE="2",
        DATABASE_MAX_OVERFLOW="4",
        LOG_LEVEL="INFO",  # the access log says which worker answered
        LOGIN_RATE_LIMIT_PER_ADDRESS="1000/minute",  # 300 buyers log in from one address
        WEB_KEEPALIVE_SECONDS="120",  # buyers connect first, then wait for every other one
    )
    server = ShopServer(env, instance.parent / "logs" / "gunicorn.log", cwd=instance.parent, options=("--prod",))
    with ExitStack() as stack:
        stack.push(server.__exit__)
        server.start()
        product_id, buyers = stock_product_and_buyers([server.url], (1, 2), stock=stock, buyers=300)

        with ConnectionGauge(instance, application_name) as connections:
            answers = race_in_processes(stack, buyers, product_id, processes)

        figures = assert_exactly_the_stock_was_sold(
            answers, buyers, product_id, server.url, server.log_tail(), stock=stock
        )
        assert server.is_running()
    orders_per_worker = Counter(
        line["pid"]
        for line in map(json.loads, filter(lambda text: text.startswith("{"), server.log_path.read_text().splitlines()))
        if line.get("event") == "request" and line.get("method") == "POST" and line.get("path") == f"{API}/orders"
    )
    assert sum(orders_per_worker.values()) == len(buyers)
    assert len(orders_per_worker) > 1, f"one worker answered every order: {orders_per_worker}"
    seconds = figures["burst_s"]
    print(
        f"\ngunicorn 4 workers: {figures} orders/s={len(answers) / seconds:.0f}"
        f" per_worker={sorted(orders_per_worker.values())} peak_db_connections={connections.peak}"
    )


def _reap(clients: Sequence[BaseProcess]) -> None:
    for client in clients:
        client.join(timeout=10)
        if client.is_alive():
            client.terminate()
            client.join(timeout=5)
