"""Where a product read and an order placement spend their time, in process (Flask test client).

The HTTP harness (compare.py) says how fast; this says where the time goes, without HTTP,
gunicorn or other processes in the way. It builds an app on throwaway SQLite files (or
PostgreSQL schemas with ``--postgres URL``), one product and one customer, warms up, then:

- ``time``: median wall time and CPU time per request of each kind;
- ``read`` / ``order``: a pyinstrument profile of that kind (``pip install pyinstrument``).

    .venv/bin/python bench/profile_requests.py time|read|order [--postgres URL]

Event delivery does not run here (no dispatcher is started), so ``order`` is the request path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import CONTEXTS
from app.containers import databases
from app.factory import container_of, create_app
from app.migrations import upgrade_all
from contexts.user.application.handlers import RegisterUser
from contexts.user.domain.model import Role

PASSWORD = "correct horse battery"
REPEATS = {"read": 2000, "order": 400}


def requests(postgres_url: str | None) -> dict[str, Callable[[], None]]:
    """A read and an order placement against a fresh app, each a callable that asserts success."""
    settings: dict[str, object] = {
        "instance_path": Path(tempfile.mkdtemp()),
        "log_level": "ERROR",
        "argon2_time_cost": 1,
        "argon2_memory_cost_kib": 8,
        "argon2_parallelism": 1,
    }
    if postgres_url:
        prefix = f"prof{uuid.uuid4().hex[:8]}"
        settings.update(database_url=postgres_url, **{f"{c}_database_schema": f"{prefix}_{c}" for c in CONTEXTS})
    app = create_app(settings)
    upgrade_all(databases(container_of(app)))
    client = app.test_client()
    register = container_of(app).user.register_user()
    register(RegisterUser(email="admin@example.com", password=PASSWORD, name="Admin", role=Role.ADMIN))
    register(RegisterUser(email="buyer@example.com", password=PASSWORD, name="Buyer"))

    def bearer(email: str) -> dict[str, str]:
        answer = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
        return {"Authorization": f"Bearer {answer.json['access_token']}"}  # type: ignore[index]

    product = client.post(
        "/api/v1/products",
        json={"sku": "SKU-1", "name": "Thing", "price": "9.99", "initial_stock": 10**9},
        headers=bearer("admin@example.com"),
    ).json["id"]  # type: ignore[index]
    buyer = bearer("buyer@example.com")

    def read() -> None:
        assert client.get(f"/api/v1/products/{product}").status_code == 200

    def order() -> None:
        items = {"items": [{"product_id": product, "quantity": 1}]}
        assert client.post("/api/v1/orders", json=items, headers=buyer).status_code == 201

    return {"read": read, "order": order}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["time", "read", "order"])
    parser.add_argument("--postgres", metavar="URL")
    arguments = parser.parse_args()
    kinds = requests(arguments.postgres)
    for request in kinds.values():
        for _ in range(50):
            request()
    if arguments.mode == "time":
        for name, request in kinds.items():
            wall: list[float] = []
            cpu = time.process_time()
            for _ in range(REPEATS[name]):
                started = time.perf_counter()
                request()
                wall.append(time.perf_counter() - started)
            per_request = (time.process_time() - cpu) / REPEATS[name]
            print(f"{name}: median {statistics.median(wall) * 1000:.3f} ms, cpu {per_request * 1000:.3f} ms/request")
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(REPEATS[arguments.mode]):
        kinds[arguments.mode]()
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False))


if __name__ == "__main__":
    main()
