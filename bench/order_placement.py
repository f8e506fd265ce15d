"""What placing an order costs over HTTP, against real ``shop serve`` processes.

Starts a server (the threaded development server, or ``--prod`` gunicorn), creates a product
with ample stock and a few customers, then measures:

- latency: orders placed one after the other by one client (no contention), median and p95;
- throughput: orders placed by ``--clients`` concurrent clients, orders per second.

The baseline, measured in the same run against the same server, is reading one product
(``GET /api/v1/products/{id}``): the cost of a request through the same stack (HTTP, routing,
JSON, one query), so the difference is what the order itself costs (product lookup,
reservation, order, outbox, all in transactions) — and, with the dispatcher running, the
deliveries it triggers compete for the same CPU.

    LOG_LEVEL=ERROR .venv/bin/python bench/order_placement.py [--prod] [--postgres URL]
        [--orders 300] [--clients 16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.registry import CONTEXTS
from tests.e2e.server import API, ShopServer, bearer, register, shop, shop_env

ADMIN = ("bench-admin@example.com", "bench admin password")


def server_env(instance: Path, postgres_url: str | None, prod: bool) -> dict[str, str]:
    settings = {"LOG_LEVEL": "ERROR", "LOGIN_RATE_LIMIT_PER_ADDRESS": "10000/minute"}
    if postgres_url:
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        settings["DATABASE_URL"] = postgres_url
        settings.update({f"{context.upper()}_DATABASE_SCHEMA": f"{prefix}_{context}" for context in CONTEXTS})
    if prod:
        settings.update(WEB_WORKERS="4", WEB_THREADS="4", EVENTS_WORKERS="2", DATABASE_POOL_SIZE="2")
    return shop_env(instance, **settings)


def drop_schemas(env: dict[str, str]) -> None:
    schemas = [value for name, value in env.items() if name.endswith("_DATABASE_SCHEMA")]
    if not schemas:
        return
    engine = create_engine(env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        for schema in schemas:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    engine.dispose()


def timed(call: Callable[[], httpx.Response], expected: int) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    assert response.status_code == expected, (response.status_code, response.text)
    return elapsed


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(name: str, samples: list[float], wall: float | None = None) -> None:
    median, p95 = statistics.median(samples) * 1000, percentile(samples, 0.95) * 1000
    line = f"{name:<28} median {median:7.1f} ms   p95 {p95:7.1f} ms"
    if wall is not None:
        line += f"   {len(samples) / wall:7.1f} /s"
    print(line)


def bench(url: str, orders: int, clients: int) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        admin = bearer(client, *ADMIN)
        created = client.post(
            f"{API}/products",
            json={"sku": f"BENCH-{uuid.uuid4().hex[:6]}", "name": "Bench", "price": "1.00", "initial_stock": 10**8},
            headers=admin,
        )
        product_id = created.json()["id"]
        customers = [
            register(client, f"c{n}-{uuid.uuid4().hex[:6]}@example.com", "correct horse") for n in range(clients)
        ]
        body = {"items": [{"product_id": product_id, "quantity": 1}]}

        def read() -> httpx.Response:
            return client.get(f"{API}/products/{product_id}")

        def order() -> httpx.Response:
            return client.post(f"{API}/orders", json=body, headers=customers[0])

        for _ in range(20):  # warm up: connections, caches
            timed(read, 200)
            timed(order, 201)
        report("baseline: read a product", [timed(read, 200) for _ in range(orders)])
        report("place an order", [timed(order, 201) for _ in range(orders)])

    def place_as(headers: dict[str, str]) -> list[float]:
        with httpx.Client(base_url=url, timeout=60) as own:
            return [
                timed(lambda: own.post(f"{API}/orders", json=body, headers=headers), 201)
                for _ in range(orders // clients)
            ]

    def read_as(_headers: dict[str, str]) -> list[float]:
        with httpx.Client(base_url=url, timeout=60) as own:
            return [timed(lambda: own.get(f"{API}/products/{product_id}"), 200) for _ in range(orders // clients)]

    for name, work in ((f"baseline: reads, {clients} clients", read_as), (f"orders, {clients} clients", place_as)):
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            samples = [sample for batch in pool.map(work, customers) for sample in batch]
        report(name, samples, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prod", action="store_true", help="serve with gunicorn (4 workers x 4 threads)")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL server URL (throwaway schemas); default SQLite")
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        instance = Path(folder) / "instance"
        env = server_env(instance, options.postgres, options.prod)
        try:
            shop("db", "upgrade", env=env, cwd=Path(folder))
            shop("users", "create-admin", ADMIN[0], "--password", ADMIN[1], env=env, cwd=Path(folder))
            server = ShopServer(env, Path(folder) / "server.log", options=("--prod",) if options.prod else ())
            with server:
                print(
                    f"{'gunicorn' if options.prod else 'dev server'} on "
                    f"{'PostgreSQL' if options.postgres else 'SQLite'}, {options.orders} orders"
                )
                bench(server.url, options.orders, options.clients)
        finally:
            drop_schemas(env)


if __name__ == "__main__":
    main()
