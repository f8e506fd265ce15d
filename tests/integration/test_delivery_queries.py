"""What the outbox's queries cost the database, on both backends.

Completed deliveries pile up until pruned, so the dispatcher's claim and ``shop events status``
must reach the deliveries not done through the partial indexes over them, never by walking
the table (bench/dispatcher_scale.py measures what that saves with a million of them). The
plans are read with EXPLAIN: on PostgreSQL with sequential scans discouraged, so that an
index the query cannot use (its WHERE does not repeat the index's condition) shows as one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from sqlalchemy import event, select

from app.containers import ApplicationContainer, databases
from contexts.order.adapters.orm import OUTBOX as ORDER_OUTBOX
from infrastructure.db.database import Database
from infrastructure.events.outbox import Outbox

# The plans are of new tables, not of tables emptied by earlier tests (tests/schema_pool.py).
pytestmark = pytest.mark.fresh_schemas

TABLE = "order_deliveries"


@dataclass(frozen=True)
class Pinged:
    TYPE: ClassVar[str] = "test.Pinged"
    VERSION: ClassVar[int] = 1

    n: int


def publish(container: ApplicationContainer, *numbers: int) -> None:
    with container.order.uow() as uow:
        container.order.outbox().record(uow.session, [(f"aggregate-{n}", Pinged(n)) for n in numbers])
        uow.commit()


@contextmanager
def statements(database: Database) -> Iterator[list[tuple[str, Any]]]:
    """The statements run on ``database`` meanwhile, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine, "before_cursor_execute", record)


def plans(database: Database, action: Callable[[], object]) -> list[str]:
    """The query plan of each query ``action`` runs on ``database``, one string each."""
    with statements(database) as seen:
        action()
    queries = [(sql, parameters) for sql, parameters in seen if sql.lstrip().upper().startswith(("SELECT", "UPDATE"))]
    assert queries, "the action ran no query"
    found = []
    with database.connect(write=False) as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            explain = "EXPLAIN (COSTS OFF)"
        else:
            explain = "EXPLAIN QUERY PLAN"
        for sql, parameters in queries:
            rows = connection.exec_driver_sql(f"{explain} {sql}", parameters).all()
            found.append("\n".join(str(row[-1]) for row in rows))
        connection.rollback()
    return found


def reads_the_table(plan: str) -> bool:
    """Whether the plan walks the deliveries table itself rather than an index of it."""
    for line in plan.splitlines():
        words = line.split()
        if "Seq Scan" in line and TABLE in words:
            return True
        if words[:1] == ["SCAN"] and "USING" not in words:
            return True
    return False


def test_recording_takes_two_statements_however_many_events_and_subscribers(container: ApplicationContainer) -> None:
    """It runs in every publishing use case's transaction: one INSERT of the events and one of
    all their deliveries, none waiting for a generated position to come back."""
    for name in ("test.first", "test.second", "test.third"):
        container.event_bus().subscribe(Pinged, lambda event, _delivery: None, name=name)
    database = databases(container)["order"]

    with container.order.uow() as uow, statements(database) as seen:
        container.order.outbox().record(uow.session, [(f"aggregate-{n}", Pinged(n)) for n in range(4)])
        uow.commit()

    inserts = [sql for sql, _ in seen if sql.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 2, inserts
    assert not any("RETURNING" in sql.upper() for sql in inserts)
    o, d = ORDER_OUTBOX.outbox, ORDER_OUTBOX.deliveries
    query = select(d.c.subscriber, d.c.aggregate_id, o.c.envelope).join(o, o.c.position == d.c.event_position)
    with database.session(write=False) as session:
        rows = session.execute(query).all()
    assert sorted((row.subscriber, row.aggregate_id, row.envelope["data"]["n"]) for row in rows) == sorted(
        (name, f"aggregate-{n}", n) for n in range(4) for name in ("test.first", "test.second", "test.third")
    ), "each delivery points at its own event"


def test_a_claim_reads_pending_deliveries_through_their_partial_indexes(container: ApplicationContainer) -> None:
    container.event_bus().subscribe(Pinged, lambda event, _delivery: None, name="test.listener")
    publish(container, 1, 2)
    outbox: Outbox = container.order.outbox()

    queue = outbox.queue
    found = plans(databases(container)["order"], lambda: queue.claim(10, owner="test", lease=timedelta(seconds=60)))

    everything = "\n".join(found)
    assert "ix_order_deliveries_pending" in everything, everything
    assert "ix_order_deliveries_incomplete" in everything, everything  # an earlier event holding one back
    assert not any(reads_the_table(plan) for plan in found), everything


def test_a_claim_with_nothing_due_writes_nothing(container: ApplicationContainer) -> None:
    """Most claims find nothing (polls; wake-ups by commits whose events another dispatcher
    took): they must not begin a write transaction, which on SQLite queues for the one writer
    lock with the web requests."""
    container.event_bus().subscribe(Pinged, lambda event, _delivery: None, name="test.listener")
    publish(container, 1)
    outbox: Outbox = container.order.outbox()
    assert len(outbox.queue.claim(10, owner="one", lease=timedelta(hours=1))) == 1

    with statements(databases(container)["order"]) as seen:
        assert outbox.queue.claim(10, owner="another", lease=timedelta(seconds=60)) == []

    writes = [sql for sql, _ in seen if "UPDATE" in sql.upper() or sql.upper().startswith("BEGIN IMMEDIATE")]
    assert writes == []


def test_status_and_dead_letters_read_only_deliveries_not_done(container: ApplicationContainer) -> None:
    outbox: Outbox = container.order.outbox()
    database = databases(container)["order"]

    for action in (outbox.ledger.status, outbox.ledger.dead_letters, lambda: outbox.ledger.retry(None)):
        for plan in plans(database, action):
            assert "ix_order_deliveries_incomplete" in plan, plan
            assert not reads_the_table(plan), plan
