"""The audit log on a real SQLite database, built by the context's own migrations: entries
round-trip, pages run newest first by position without gaps or repeats, filters combine, and
a redelivered event leaves the single entry its first delivery wrote."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from contexts.audit.adapters import orm
from contexts.audit.adapters.unit_of_work import SqlAlchemyAuditUnitOfWork
from contexts.audit.application.handlers import RecordEntryHandler
from contexts.audit.application.ports import LoggedEntry, UnitOfWorkFactory
from contexts.audit.application.subscribers import when_order_placed_audit, when_user_registered_audit
from contexts.audit.domain.model import AuditEntry
from contexts.order.events import OrderedLine, OrderPlaced
from contexts.user.events import UserRegistered
from infrastructure.db import migrations
from infrastructure.db.database import Database
from infrastructure.events.delivery import Delivery
from infrastructure.events.inbox import AlreadyHandled, Inbox
from tests.conftest import Backend
from tests.round_trips import counted

MIGRATIONS = Path(__file__).resolve().parents[4] / "contexts" / "audit" / "migrations"
PLACED = "order.OrderPlaced"
REGISTERED = "user.UserRegistered"
USER = uuid.uuid4()


@pytest.fixture
def database(tmp_path: Path, backend: Backend) -> Iterator[Database]:
    database = backend.database("audit", tmp_path)
    migrations.upgrade(database, MIGRATIONS, "audit_alembic_version")
    yield database
    database.dispose()


@pytest.fixture
def uow(database: Database) -> UnitOfWorkFactory:
    inbox = Inbox(orm.INBOX)

    def open_unit(*, write: bool = True, delivery: Delivery | None = None) -> SqlAlchemyAuditUnitOfWork:
        return SqlAlchemyAuditUnitOfWork(database, inbox=inbox, write=write, delivery=delivery)

    return open_unit


def entry(
    event_type: str = REGISTERED,
    entity_id: uuid.UUID | None = None,
    *,
    entry_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = USER,
    summary: str = "something happened",
    data: dict[str, Any] | None = None,
    recorded_at: datetime | None = None,
) -> AuditEntry:
    return AuditEntry(
        id=entry_id or uuid.uuid4(),
        event_id=uuid.uuid4(),
        event_type=event_type,
        entity_type="user" if event_type == REGISTERED else "order",
        entity_id=entity_id or uuid.uuid4(),
        actor_id=actor_id,
        summary=summary,
        data={"n": 1} if data is None else data,
        recorded_at=recorded_at or datetime.now(timezone.utc),
    )


def append(uow: UnitOfWorkFactory, *entries: AuditEntry, delivery: Delivery | None = None) -> None:
    with uow(delivery=delivery) as unit:
        for item in entries:
            unit.entries.append(item)
        unit.commit()


def listed(
    uow: UnitOfWorkFactory,
    *,
    limit: int = 10,
    before_position: int | None = None,
    event_type: str | None = None,
    entity_id: uuid.UUID | None = None,
) -> list[LoggedEntry]:
    with uow(write=False) as unit:
        return unit.entries.list(
            limit=limit, before_position=before_position, event_type=event_type, entity_id=entity_id
        )


def every_page(
    uow: UnitOfWorkFactory,
    size: int,
    *,
    event_type: str | None = None,
    entity_id: uuid.UUID | None = None,
) -> list[list[AuditEntry]]:
    pages: list[list[AuditEntry]] = []
    before: int | None = None
    while True:
        page = listed(uow, limit=size, before_position=before, event_type=event_type, entity_id=entity_id)
        if not page:
            return pages
        pages.append([logged.entry for logged in page])
        before = page[-1].position


def test_an_entry_round_trips_with_every_field(uow: UnitOfWorkFactory) -> None:
    stored = entry(
        PLACED,
        actor_id=None,
        summary="order placed: 1 line, 12.50 EUR " + "x" * 600,
        data={"order_id": str(uuid.uuid4()), "lines": [{"quantity": 2, "unit_price": "12.50"}], "total": "25.00"},
        recorded_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2))),
    )

    append(uow, stored)

    [logged] = listed(uow)
    assert logged.entry == stored
    assert logged.entry.recorded_at.tzinfo == timezone.utc
    assert logged.position >= 1


def test_entries_come_newest_first_and_positions_grow(uow: UnitOfWorkFactory) -> None:
    entries = [entry() for _ in range(4)]
    append(uow, entries[0])
    append(uow, entries[1], entries[2])
    append(uow, entries[3])

    page = listed(uow)

    assert [logged.entry for logged in page] == entries[::-1]
    positions = [logged.position for logged in page]
    assert positions == sorted(positions, reverse=True) and len(set(positions)) == 4


def test_pages_of_two_cover_the_log_once_each_without_gaps(uow: UnitOfWorkFactory) -> None:
    entries = [entry() for _ in range(7)]
    append(uow, *entries)

    pages = every_page(uow, 2)

    assert [len(page) for page in pages] == [2, 2, 2, 1]
    assert [item for page in pages for item in page] == entries[::-1]


def test_filters_combine_with_each_other_and_with_the_cursor(uow: UnitOfWorkFactory) -> None:
    order = uuid.uuid4()
    about_order = [entry(PLACED, order), entry("order.OrderCancelled", order), entry(PLACED, order)]
    others = [entry(PLACED), entry(REGISTERED), entry(REGISTERED, order)]
    append(uow, about_order[0], others[0], about_order[1], others[1], about_order[2], others[2])

    def ids(**query: Any) -> list[uuid.UUID]:
        return [logged.entry.id for logged in listed(uow, **query)]

    assert ids(event_type=PLACED) == [about_order[2].id, others[0].id, about_order[0].id]
    assert ids(entity_id=order) == [others[2].id, about_order[2].id, about_order[1].id, about_order[0].id]
    assert ids(event_type=PLACED, entity_id=order) == [about_order[2].id, about_order[0].id]
    newest = listed(uow, limit=1, event_type=PLACED, entity_id=order)[0]
    assert ids(event_type=PLACED, entity_id=order, before_position=newest.position) == [about_order[0].id]
    assert ids(event_type="order.Unknown") == []
    assert [item.id for page in every_page(uow, 1, entity_id=order) for item in page] == ids(entity_id=order)


def test_an_uncommitted_append_is_not_kept(uow: UnitOfWorkFactory) -> None:
    with uow() as unit:
        unit.entries.append(entry())

    assert listed(uow) == []


def test_an_entry_id_is_stored_once(uow: UnitOfWorkFactory) -> None:
    first = entry()
    append(uow, first)

    with pytest.raises(IntegrityError):
        append(uow, entry(entry_id=first.id))

    assert [logged.entry for logged in listed(uow)] == [first]


def test_the_repository_can_only_append_and_read(uow: UnitOfWorkFactory) -> None:
    with uow(write=False) as unit:
        public = {name for name in dir(unit.entries) if not name.startswith("_")}

    assert public == {"append", "list"}


def test_a_redelivered_event_keeps_the_one_entry_of_its_first_delivery(
    uow: UnitOfWorkFactory,
) -> None:
    event = UserRegistered(user_id=uuid.uuid4(), email="ada@example.com", name="Ada")
    delivery = Delivery("audit.when_user_registered_audit", uuid.uuid4())

    when_user_registered_audit(event, delivery, record=RecordEntryHandler(uow=uow))
    with pytest.raises(AlreadyHandled):
        when_user_registered_audit(event, delivery, record=RecordEntryHandler(uow=uow))

    [logged] = listed(uow)
    assert logged.entry.event_id == delivery.event_id
    assert logged.entry.entity_id == event.user_id


def test_each_subscribers_deliveries_add_their_own_entries(
    uow: UnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()
    placed = OrderPlaced(
        order_id=uuid.uuid4(),
        user_id=user,
        lines=(OrderedLine(uuid.uuid4(), 1, Decimal("3.00"), "SKU", "Thing"),),
        total=Decimal("3.00"),
        currency="USD",
    )
    registered = UserRegistered(user_id=user, email="b@example.com", name="B")

    when_user_registered_audit(
        registered, Delivery("audit.when_user_registered_audit", uuid.uuid4()), record=RecordEntryHandler(uow=uow)
    )
    when_order_placed_audit(
        placed, Delivery("audit.when_order_placed_audit", uuid.uuid4()), record=RecordEntryHandler(uow=uow)
    )

    assert [logged.entry.event_type for logged in listed(uow)] == [PLACED, REGISTERED]


def test_an_entry_and_its_inbox_row_are_one_statement_on_postgresql(uow: UnitOfWorkFactory, database: Database) -> None:
    """Every event's entry: on PostgreSQL one INSERT with the inbox row's in a WITH, on its own
    (where BEGIN, two INSERTs and COMMIT were four round trips); on SQLite, which has no INSERT
    in a WITH and no round trips, the two INSERTs in one transaction as before."""
    event = UserRegistered(user_id=uuid.uuid4(), email="ada@example.com", name="Ada")

    with counted() as audited:
        when_user_registered_audit(event, Delivery("audit.user_log", uuid.uuid4()), record=RecordEntryHandler(uow=uow))

    if database.engine.dialect.name == "postgresql":
        assert (audited.kinds(), audited.alone, audited.transactions) == (["WITH"], 1, 0)
    else:
        assert (audited.kinds(), audited.alone, audited.transactions) == (["INSERT", "INSERT"], 0, 1)
    [logged] = listed(uow)
    assert logged.entry.entity_id == event.user_id


def test_an_entry_refused_by_its_own_key_in_a_delivery_fails_and_leaves_the_delivery_to_its_retry(
    uow: UnitOfWorkFactory,
) -> None:
    """A failure of the entry itself is a failure to retry, not a sign of an earlier delivery:
    the inbox keeps no row of it (in one statement or in a transaction alike)."""
    first = entry()
    append(uow, first)
    delivery = Delivery("audit.user_log", uuid.uuid4())

    with pytest.raises(IntegrityError), uow(delivery=delivery) as unit:
        unit.entries.append(entry(entry_id=first.id))
        unit.commit()
    append(uow, entry(), delivery=delivery)

    assert len(listed(uow)) == 2


def test_a_delivery_the_inbox_refuses_for_anything_but_its_key_fails_and_is_no_repeat(
    uow: UnitOfWorkFactory,
) -> None:
    """Only the inbox's key refusing a row recorded before means the work was done: an inbox
    row refused otherwise (here NOT NULL) was once taken for a repeat on both paths (any
    IntegrityError in a transaction, any naming the inbox's table in one statement), and the
    delivery's effect was lost as handled."""
    with pytest.raises(IntegrityError):
        append(uow, entry(), delivery=Delivery("audit.user_log", None))  # type: ignore[arg-type]

    assert listed(uow) == []


def test_a_delivery_recorded_before_is_a_repeat_on_both_paths(uow: UnitOfWorkFactory) -> None:
    delivery = Delivery("audit.user_log", uuid.uuid4())
    append(uow, entry(), delivery=delivery)

    with pytest.raises(AlreadyHandled):
        append(uow, entry(), delivery=delivery)

    assert len(listed(uow)) == 1
