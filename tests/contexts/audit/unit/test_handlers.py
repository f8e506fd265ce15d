"""The audit context on in-memory fakes: each fact becomes exactly one entry (entity, actor,
summary, data, event id) in one commit, and the log is read newest first in keyset pages."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, get_args

import pytest

from contexts.audit import http
from contexts.audit.application.handlers import ListAuditEntries, ListAuditEntriesHandler, RecordEntryHandler
from contexts.audit.application.subscribers import (
    when_order_cancelled_audit,
    when_order_placed_audit,
    when_user_registered_audit,
)
from contexts.audit.domain.model import AuditEntry
from contexts.order.events import OrderCancelled, OrderedLine, OrderPlaced
from contexts.user.events import UserRegistered
from infrastructure.events.delivery import Delivery
from infrastructure.events.envelope import Envelope
from tests.fakes.audit import FakeAuditLog
from tests.fakes.common import CommitFailed

USER = uuid.uuid4()
ORDER = uuid.uuid4()
PRODUCT = uuid.uuid4()


@pytest.fixture
def log() -> FakeAuditLog:
    return FakeAuditLog()


def placed(*, total: str = "25.00", lines: int = 2, currency: str = "EUR") -> OrderPlaced:
    return OrderPlaced(
        order_id=ORDER,
        user_id=USER,
        lines=tuple(
            OrderedLine(uuid.uuid4(), quantity=1, unit_price=Decimal("12.50"), sku=f"SKU-{n}", name=f"Thing {n}")
            for n in range(lines)
        ),
        total=Decimal(total),
        currency=currency,
    )


def delivered(log: FakeAuditLog) -> Delivery:
    """The delivery a subscriber is handed, of the event ``log.event_id`` names."""
    return Delivery("audit.log", log.event_id)


def only_entry(log: FakeAuditLog) -> AuditEntry:
    assert len(log.committed) == 1, log.committed
    assert log.commits == 1
    assert [uow.write for uow in log.opened] == [True]
    return log.committed[0].entry


# --- subscribers ------------------------------------------------------------------------------


def test_a_registration_is_one_entry_about_the_user_by_the_user(log: FakeAuditLog) -> None:
    event = UserRegistered(user_id=USER, email="ada@example.com", name="Ada Lovelace")
    before = datetime.now(timezone.utc)

    when_user_registered_audit(event, delivered(log), record=RecordEntryHandler(uow=log))

    entry = only_entry(log)
    assert entry.event_id == log.event_id
    assert entry.event_type == "user.UserRegistered"
    assert (entry.entity_type, entry.entity_id, entry.actor_id) == ("user", USER, USER)
    assert "Ada Lovelace" in entry.summary and "ada@example.com" in entry.summary
    assert entry.data == {"user_id": str(USER), "email": "ada@example.com", "name": "Ada Lovelace"}
    assert before <= entry.recorded_at <= datetime.now(timezone.utc)
    assert entry.recorded_at.tzinfo is not None


def test_a_placed_order_is_one_entry_about_the_order_by_its_buyer(log: FakeAuditLog) -> None:
    event = placed(total="25.00", lines=2, currency="EUR")

    when_order_placed_audit(event, delivered(log), record=RecordEntryHandler(uow=log))

    entry = only_entry(log)
    assert entry.event_id == log.event_id
    assert entry.event_type == "order.OrderPlaced"
    assert (entry.entity_type, entry.entity_id, entry.actor_id) == ("order", ORDER, USER)
    assert entry.summary == "order placed: 2 lines, 25.00 EUR"
    assert entry.data["order_id"] == str(ORDER)
    assert entry.data["user_id"] == str(USER)
    assert entry.data["total"] == "25.00"
    assert entry.data["currency"] == "EUR"
    assert entry.data["lines"] == [
        {"product_id": str(line.product_id), "quantity": 1, "unit_price": "12.50", "sku": line.sku, "name": line.name}
        for line in event.lines
    ]


def test_a_one_line_order_says_line_not_lines(log: FakeAuditLog) -> None:
    when_order_placed_audit(
        placed(total="12.50", lines=1, currency="USD"), delivered(log), record=RecordEntryHandler(uow=log)
    )

    assert only_entry(log).summary == "order placed: 1 line, 12.50 USD"


def test_a_customers_cancellation_is_attributed_to_the_customer(log: FakeAuditLog) -> None:
    event = OrderCancelled(order_id=ORDER, user_id=USER, reason="cancelled_by_customer")

    when_order_cancelled_audit(event, delivered(log), record=RecordEntryHandler(uow=log))

    entry = only_entry(log)
    assert entry.event_type == "order.OrderCancelled"
    assert (entry.entity_type, entry.entity_id, entry.actor_id) == ("order", ORDER, USER)
    assert "cancelled_by_customer" in entry.summary
    assert entry.data == {"order_id": str(ORDER), "user_id": str(USER), "reason": "cancelled_by_customer"}


@pytest.mark.parametrize("reason", ["cancelled_by_admin", "payment_failed"])
def test_any_other_cancellation_names_no_actor_rather_than_the_wrong_one(log: FakeAuditLog, reason: str) -> None:
    when_order_cancelled_audit(
        OrderCancelled(order_id=ORDER, user_id=USER, reason=reason), delivered(log), record=RecordEntryHandler(uow=log)
    )

    entry = only_entry(log)
    assert entry.actor_id is None
    assert entry.entity_id == ORDER
    assert reason in entry.summary
    assert entry.data["user_id"] == str(USER)


def test_each_delivery_records_its_own_event_id_and_a_fresh_entry_id(log: FakeAuditLog) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    log.event_id = first
    when_user_registered_audit(
        UserRegistered(USER, "a@example.com", "A"), delivered(log), record=RecordEntryHandler(uow=log)
    )
    log.event_id = second
    when_order_placed_audit(placed(), delivered(log), record=RecordEntryHandler(uow=log))

    entries = log.entries()
    assert [entry.event_id for entry in entries] == [first, second]
    assert entries[0].id != entries[1].id


def test_a_failed_commit_leaves_no_entry_and_propagates(log: FakeAuditLog) -> None:
    def fail() -> None:
        raise CommitFailed()

    log.before_commit = fail

    with pytest.raises(CommitFailed):
        when_order_cancelled_audit(
            OrderCancelled(ORDER, USER, "cancelled_by_customer"), delivered(log), record=RecordEntryHandler(uow=log)
        )

    assert log.committed == []


@pytest.mark.parametrize(
    ("event", "audit"),
    [
        (UserRegistered(user_id=USER, email="ada@example.com", name="Ada"), when_user_registered_audit),
        (placed(total="7.5", lines=3), when_order_placed_audit),
        (OrderCancelled(order_id=ORDER, user_id=USER, reason="cancelled_by_admin"), when_order_cancelled_audit),
    ],
    ids=["UserRegistered", "OrderPlaced", "OrderCancelled"],
)
def test_entry_data_reads_as_the_events_envelope_data(
    log: FakeAuditLog, event: Any, audit: Callable[..., None]
) -> None:
    audit(event, delivered(log), record=RecordEntryHandler(uow=log))

    assert only_entry(log).data == Envelope(event).to_dict()["data"]


def test_the_http_filter_offers_exactly_the_audited_event_types() -> None:
    audited = {UserRegistered.TYPE, OrderPlaced.TYPE, OrderCancelled.TYPE}
    assert set(get_args(http.AuditedEventType)) == audited


# --- listing ----------------------------------------------------------------------------------


def fill(log: FakeAuditLog, count: int) -> list[AuditEntry]:
    """``count`` committed entries, alternately about a user and an order."""
    for n in range(count):
        log.event_id = uuid.uuid4()
        if n % 2 == 0:
            when_user_registered_audit(
                UserRegistered(uuid.uuid4(), f"u{n}@example.com", f"U{n}"),
                delivered(log),
                record=RecordEntryHandler(uow=log),
            )
        else:
            when_order_placed_audit(
                dataclasses.replace(placed(), order_id=uuid.uuid4()), delivered(log), record=RecordEntryHandler(uow=log)
            )
    log.opened.clear()
    return log.entries()


def test_pages_come_newest_first_and_say_whether_more_follow(log: FakeAuditLog) -> None:
    entries = fill(log, 5)
    list_page = ListAuditEntriesHandler(uow=log)

    first = list_page(ListAuditEntries(limit=2))
    second = list_page(ListAuditEntries(limit=2, before_position=first.last_position))
    third = list_page(ListAuditEntries(limit=2, before_position=second.last_position))

    assert first.items == [entries[4], entries[3]] and first.has_more and first.last_position == 4
    assert second.items == [entries[2], entries[1]] and second.has_more and second.last_position == 2
    assert third.items == [entries[0]] and not third.has_more and third.last_position == 1
    assert all(not uow.write for uow in log.opened)


def test_a_page_that_exactly_fills_the_limit_has_no_more(log: FakeAuditLog) -> None:
    entries = fill(log, 3)

    page = ListAuditEntriesHandler(uow=log)(ListAuditEntries(limit=3))

    assert page.items == entries[::-1]
    assert not page.has_more


def test_an_empty_log_is_one_empty_last_page(log: FakeAuditLog) -> None:
    page = ListAuditEntriesHandler(uow=log)(ListAuditEntries(limit=20))

    assert (page.items, page.last_position, page.has_more) == ([], None, False)


def test_filters_are_passed_to_the_log_and_page_within_the_matches(log: FakeAuditLog) -> None:
    entries = fill(log, 6)
    orders = [entry for entry in entries if entry.event_type == OrderPlaced.TYPE]
    list_page = ListAuditEntriesHandler(uow=log)

    first = list_page(ListAuditEntries(limit=2, event_type=OrderPlaced.TYPE))
    rest = list_page(ListAuditEntries(limit=2, event_type=OrderPlaced.TYPE, before_position=first.last_position))
    by_entity = list_page(ListAuditEntries(limit=20, entity_id=orders[0].entity_id))
    both = list_page(ListAuditEntries(limit=20, event_type=UserRegistered.TYPE, entity_id=orders[0].entity_id))

    assert first.items == [orders[2], orders[1]] and first.has_more
    assert rest.items == [orders[0]] and not rest.has_more
    assert by_entity.items == [orders[0]]
    assert both.items == []
