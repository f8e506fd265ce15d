"""Where a product read and an order placement spend their time, in process (Flask test client).

The HTTP harness (compare.py) says how fast; this says where the time goes, without HTTP,
gunicorn or other processes in the way. It builds an app on throwaway SQLite files (or
PostgreSQL schemas with ``--postgres URL``), one product and one customer, warms up, then:

- ``time``: median wall time and CPU time per request of each kind;
- ``read`` / ``order``: a pyinstrument profile of that kind (``pip install pyinstrument``);
- ``deliveries``: what delivering the events of 300 orders costs, per subscriber (wall and CPU
  time per delivery, and the claims and completions around them), then the functions that
  take the most CPU in all of it (cProfile);
- ``statements``: what one order costs the database, request and deliveries: statements run,
  and transactions begun, committed and rolled back (on PostgreSQL each of those is a round
  trip to the server and a pass through SQLAlchemy and psycopg; a BEGIN is sent by psycopg
  before a transaction's first statement, except in autocommit; on SQLite the shop's own
  ``BEGIN`` statements are counted among the statements too).

    .venv/bin/python bench/profile_requests.py time|read|order|deliveries|statements [--postgres URL]

Event delivery does not run while requests are timed (no dispatcher is started), so ``order``
is the request path; ``deliveries`` runs the deliveries afterwards, in this thread, one
subscriber's delivery at a time, as a dispatcher's worker does.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine, event

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.containers import databases
from app.factory import container_of, create_app
from app.migrations import upgrade_all
from app.registry import CONTEXTS
from contexts.user.application.handlers import RegisterUser
from contexts.user.domain.model import Role

PASSWORD = "correct horse battery"
REPEATS = {"read": 2000, "order": 400, "deliveries": 300}


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

    def deliveries() -> None:
        """Deliver everything pending now; what each subscriber took, printed per subscriber."""
        dispatcher = container_of(app).dispatcher()
        lease = timedelta(minutes=5)
        spent: defaultdict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])

        @contextmanager
        def timing(name: str) -> Iterator[None]:
            wall, cpu = time.perf_counter(), time.thread_time()
            yield
            totals = spent[name]
            totals[0] += 1
            totals[1] += time.perf_counter() - wall
            totals[2] += time.thread_time() - cpu

        for outbox in dispatcher.outboxes:
            while True:
                with timing("(claims)"):
                    claimed = outbox.queue.claim(100, owner=dispatcher.owner, lease=lease)
                if not claimed:
                    break
                for delivery in claimed:
                    with timing(delivery.subscriber):
                        assert dispatcher.runner.run_delivery(outbox, delivery), "every delivery succeeds"
                with timing("(completions)"):
                    outbox.queue.complete(claimed)
        report = sorted(spent.items(), key=lambda item: -item[1][1])
        all_wall = sum(totals[1] for _, totals in report)
        print(f"{'subscriber':45} {'runs':>6} {'wall ms each':>13} {'cpu ms each':>12} {'share':>6}")
        for name, (runs, wall, cpu) in report:
            print(f"{name:45} {runs:6.0f} {wall / runs * 1000:13.3f} {cpu / runs * 1000:12.3f} {wall / all_wall:6.0%}")

    return {"read": read, "order": order, "deliveries": deliveries}


ORDERS_COUNTED = 50


def count_statements(kinds: dict[str, Callable[[], None]]) -> None:
    """Statements and transactions per order: the request path, then its deliveries."""
    counts: Counter[str] = Counter()

    def statement(*_args: object) -> None:
        counts["statements"] += 1

    def outside_transactions(connection: Connection) -> bool:
        """Whether the connection runs statements on their own (``Database.reading``): no BEGIN
        is sent, and its "rollback" costs no round trip."""
        options = connection.get_execution_options()
        return options.get("isolation_level") == "AUTOCOMMIT" or (
            "sqlite_begin" in options and not options["sqlite_begin"]
        )

    def begin(connection: Connection) -> None:
        counts["statements alone" if outside_transactions(connection) else "transactions begun"] += 1

    def commit(_connection: Connection) -> None:
        counts["commits"] += 1

    def rollback(connection: Connection) -> None:
        if not outside_transactions(connection):
            counts["rollbacks"] += 1

    hooks: dict[str, Callable[..., None]] = {
        "before_cursor_execute": statement,
        "begin": begin,
        "commit": commit,
        "rollback": rollback,
    }

    def place_orders() -> None:
        for _ in range(ORDERS_COUNTED):
            kinds["order"]()

    def deliver_them() -> None:
        with redirect_stdout(io.StringIO()):  # its report per subscriber: timings, not wanted here
            kinds["deliveries"]()

    deliver_them()  # what the warm-up left
    for phase, run in (("request", place_orders), ("deliveries", deliver_them)):
        counts.clear()
        for name, hook in hooks.items():
            event.listen(Engine, name, hook)
        try:
            run()
        finally:
            for name, hook in hooks.items():
                event.remove(Engine, name, hook)
        per_order = ", ".join(f"{name} {count / ORDERS_COUNTED:.1f}" for name, count in sorted(counts.items()))
        print(f"per order, {phase}: {per_order}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["time", "read", "order", "deliveries", "statements"])
    parser.add_argument("--postgres", metavar="URL")
    arguments = parser.parse_args()
    kinds = requests(arguments.postgres)
    for name in ("read", "order"):
        for _ in range(50):
            kinds[name]()
    if arguments.mode == "statements":
        count_statements(kinds)
        return
    if arguments.mode == "deliveries":
        kinds["deliveries"]()  # the warm-up's, and the registrations'
        for profiled in (False, True):
            for _ in range(REPEATS["deliveries"]):
                kinds["order"]()
            print(f"\nthe deliveries of {REPEATS['deliveries']} orders{', under cProfile' if profiled else ''}:")
            if not profiled:
                kinds["deliveries"]()
                continue
            profiler = cProfile.Profile(time.thread_time)
            profiler.runcall(kinds["deliveries"])
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    if arguments.mode == "time":
        for name in ("read", "order"):
            request = kinds[name]
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
