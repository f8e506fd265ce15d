"""What a long history of completed deliveries costs the dispatcher's claim and `shop events status`.

Builds the user context's event tables (its migrations) on SQLite (a file) and, with
``--postgres``, in a throwaway PostgreSQL schema; records a small backlog of pending
deliveries, times a claim and the status query, then loads ``--deliveries`` completed
deliveries older than the backlog straight into the tables (bulk Core inserts, no dispatcher)
and times both again. Each timing is the median of several runs; the query plans are printed
for both states (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN ANALYZE after ANALYZE, as
autovacuum would have run after a million inserts).

    LOG_LEVEL=ERROR .venv/bin/python bench/dispatcher_scale.py [--deliveries 1000000] \
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, insert

from app.migrations import upgrade_all
from contexts.user.adapters.orm import OUTBOX
from infrastructure.db.database import Database
from infrastructure.events.delivery_queue import ClaimedDelivery
from infrastructure.events.outbox import Outbox
from infrastructure.events.tables import DONE, PENDING

EVENT_TYPE = "bench.Pinged"
SUBSCRIBERS = [f"bench.subscriber_{n}" for n in range(4)]
CHUNK = 20_000
OWNER = "bench:scale"


class NoSubscribers:
    """The outbox's subscriber directory; never asked, every row is inserted directly."""

    def subscribers(self, event_type: str) -> list[str]:
        return []


def load(database: Database, first_position: int, events: int, status: str) -> None:
    """``events`` events from ``first_position`` on, each with one delivery per subscriber."""
    o, d = OUTBOX.outbox, OUTBOX.deliveries
    now = datetime.now(timezone.utc)
    with database.connect(write=True) as connection:
        for start in range(first_position, first_position + events, CHUNK):
            positions = range(start, min(first_position + events, start + CHUNK))
            outbox_rows: list[dict[str, Any]] = []
            delivery_rows: list[dict[str, Any]] = []
            for position in positions:
                event_id = uuid.uuid4()
                aggregate = str(uuid.uuid4())
                outbox_rows.append(
                    {
                        "position": position,
                        "event_id": event_id,
                        "event_type": EVENT_TYPE,
                        "aggregate_id": aggregate,
                        "occurred_at": now,
                        "envelope": {
                            "id": str(event_id),
                            "type": EVENT_TYPE,
                            "version": 1,
                            "occurred_at": now.isoformat(),
                            "data": {"n": position},
                            "trace": {},
                        },
                    }
                )
                delivery_rows.extend(
                    {
                        "id": uuid.uuid4(),
                        "event_position": position,
                        "subscriber": subscriber,
                        "event_type": EVENT_TYPE,
                        "aggregate_id": aggregate,
                        "status": status,
                        "attempts": 1 if status == DONE else 0,
                        "available_at": now,
                        "claimed_until": None,
                        "claimed_by": OWNER if status == DONE else None,
                        "last_error": None,
                        "recorded_at": now,
                        "completed_at": now if status == DONE else None,
                    }
                    for subscriber in SUBSCRIBERS
                )
            connection.execute(insert(o), outbox_rows)
            connection.execute(insert(d), delivery_rows)
            connection.commit()


@contextmanager
def statements(database: Database) -> Iterator[list[tuple[str, Any]]]:
    """The queries run on ``database`` meanwhile, with their parameters, for EXPLAIN."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE")):
            seen.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", record)


def median_ms(action: Callable[[], Any], runs: int, after: Callable[[Any], Any] = lambda _: None) -> float:
    """The median time of ``action`` after a first run to warm up; ``after`` (untimed) undoes it."""
    after(action())
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        samples.append((time.perf_counter() - started) * 1000)
        after(result)
    return statistics.median(samples)


def explain(connection: Connection, statement: str, parameters: Any) -> list[str]:
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        return [f"{row[1]:>3} {row[3]}" for row in rows]
    # ANALYZE runs the statement (a claim takes its rows): the transaction is rolled back below.
    rows = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {statement}", parameters).all()
    return [row[0] for row in rows]


def measure(database: Database, outbox: Outbox, label: str, limit: int, runs: int) -> None:
    def claim() -> list[ClaimedDelivery]:
        return outbox.queue.claim(limit, owner=OWNER, lease=timedelta(seconds=60))

    claim_ms = median_ms(claim, runs, after=outbox.queue.release)
    status_ms = median_ms(outbox.ledger.status, max(3, runs // 4))
    print(f"  {label}: claim of {limit} {claim_ms:8.1f} ms   status {status_ms:8.1f} ms")
    explained: tuple[tuple[str, Callable[[], Any], Callable[[Any], Any]], ...] = (
        ("claim", claim, outbox.queue.release),
        ("status", outbox.ledger.status, lambda _: None),
    )
    for name, action, after in explained:
        with statements(database) as seen:
            result = action()
        after(result)
        with database.connect(write=False) as connection:
            for statement, parameters in seen:
                print(f"    {name}: {' '.join(statement.split())[:160]}…")
                for line in explain(connection, statement, parameters):
                    print(f"      {line}")
            connection.rollback()


def analyze(database: Database) -> None:
    """Statistics as autovacuum keeps them on PostgreSQL; the app never runs ANALYZE on SQLite."""
    if database.engine.dialect.name == "postgresql":
        with database.connect(write=True) as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()


def scale(database: Database, deliveries: int, backlog: int, limit: int, runs: int) -> None:
    upgrade_all({"user": database})
    outbox = Outbox("user", database, OUTBOX, NoSubscribers())
    done_events = deliveries // len(SUBSCRIBERS)
    load(database, done_events + 1, backlog, PENDING)  # the backlog comes after all that is done
    analyze(database)
    measure(database, outbox, f"{backlog * len(SUBSCRIBERS)} pending, none done", limit, runs)
    started = time.perf_counter()
    load(database, 1, done_events, DONE)
    print(f"  loaded {done_events * len(SUBSCRIBERS):,} done deliveries in {time.perf_counter() - started:.0f} s")
    analyze(database)
    measure(database, outbox, f"{backlog * len(SUBSCRIBERS)} pending, {deliveries:,} done", limit, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000, help="completed deliveries to load")
    parser.add_argument("--backlog", type=int, default=100, help="pending events (each with 4 deliveries)")
    parser.add_argument("--limit", type=int, default=32, help="deliveries per claim")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--postgres", metavar="URL", help="also on this PostgreSQL server, in a throwaway schema")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        print("SQLite")
        sqlite = Database("user", f"sqlite:///{Path(folder) / 'user.db'}")
        try:
            scale(sqlite, options.deliveries, options.backlog, options.limit, options.runs)
        finally:
            sqlite.dispose()
    if options.postgres:
        print("PostgreSQL")
        schema = f"bench_{uuid.uuid4().hex[:8]}_user"
        postgres = Database("user", options.postgres, schema=schema)
        try:
            scale(postgres, options.deliveries, options.backlog, options.limit, options.runs)
        finally:
            with postgres.connect(write=True) as connection:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                connection.commit()
            postgres.dispose()


if __name__ == "__main__":
    main()
