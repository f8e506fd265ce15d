"""One context's outbox: its events recorded with the change, a pending delivery per subscriber.

:meth:`Outbox.record` and :meth:`Outbox.record_with` run inside the publishing unit of work's
transaction. What is then done to the deliveries has a module per side: the dispatcher's
(:mod:`~infrastructure.events.delivery_queue`: claim, complete, fail) and the operator's
(:mod:`~infrastructure.events.delivery_ledger`: status, dead letters, retry, hasten, prune), each
reached from the outbox that recorded them (``outbox.queue``, ``outbox.ledger``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlalchemy import Column, Connection, bindparam, func, insert, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate
from sqlalchemy.sql.elements import BindParameter

from infrastructure.db.database import Database
from infrastructure.events.delivery_ledger import DeliveryLedger
from infrastructure.events.delivery_queue import DeliveryQueue
from infrastructure.events.envelope import Envelope, Event
from infrastructure.events.tables import PENDING, OutboxTables

__all__ = ["Outbox", "PublishingRefused", "ReturningDML"]


class PublishingRefused(RuntimeError):
    """Events were about to be recorded in the outbox of a context this process does not serve.

    Its subscribers, here and elsewhere, are reached from the process that serves it (its
    dispatcher and relay); recorded here, the events would get no delivery at all. Raised
    before the transaction commits, so the change is not made either."""


class SubscriberDirectory(Protocol):
    def subscribers(self, event_type: str) -> list[str]: ...


# What an INSERT … RETURNING or UPDATE … RETURNING is to :meth:`Outbox.record_with`.
ReturningDML = ReturningInsert[Any] | ReturningUpdate[Any]
# The columns :meth:`Outbox._rows` gives values for: an event's, a delivery's but its position.
_EVENT_COLUMNS = ["event_id", "event_type", "aggregate_id", "occurred_at", "envelope"]
_DELIVERY_COLUMNS = [
    "id",
    "subscriber",
    "event_type",
    "aggregate_id",
    "status",
    "attempts",
    "available_at",
    "recorded_at",
]


class Outbox:
    def __init__(
        self, context: str, database: Database, tables: OutboxTables, subscribers: SubscriberDirectory
    ) -> None:
        self.context = context
        self._outbox = tables.outbox
        self._deliveries = tables.deliveries
        self._subscribers = subscribers
        self._listeners: list[Callable[[], None]] = []
        self._recorded: list[Callable[[Sequence[str]], None]] = []
        self._refusal: str | None = None
        self._with_effect: dict[tuple[ReturningDML, int, int], Select[Any]] = {}
        # Compiled once by SQLAlchemy, as every statement run per commit should be.
        d, o = self._deliveries, self._outbox
        self._insert_deliveries = insert(d).values(  # "event_id": a parameter of each row
            event_position=select(o.c.position)
            .where(o.c.event_id == bindparam("event_id", type_=o.c.event_id.type))
            .scalar_subquery()
        )
        self.queue = DeliveryQueue(context, database, tables)
        self.ledger = DeliveryLedger(context, database, tables, wake=self.committed)

    def refuse_publishing(self, reason: str) -> None:
        """From now on, :meth:`record` raises :class:`PublishingRefused` saying ``reason``: for
        the outbox of a context served by another process."""
        self._refusal = reason

    def record(self, session: Session, events: Sequence[tuple[Any, Event]]) -> None:
        """Store ``(aggregate id, event)`` pairs and one pending delivery per subscriber.

        Two statements, however many events and subscribers (it runs in the transaction of
        every use case that publishes), each compiled once: the events, and all deliveries
        in one executemany. A delivery finds its event's position by ``event_id`` in a
        subquery, so no INSERT has to return the position first (a round trip per event).
        """
        event_rows, delivery_rows = self._rows(events)
        if event_rows:
            session.execute(insert(self._outbox), event_rows)
        if delivery_rows:
            session.execute(self._insert_deliveries, delivery_rows)

    def record_with(
        self,
        connection: Connection,
        effect: ReturningDML,
        parameters: Mapping[str, Any],
        events: Sequence[tuple[Any, Event]],
    ) -> bool:
        """Run ``effect``, an INSERT or UPDATE … RETURNING at most one row (with any WITHs of its
        own), and, only if it returned its row, store ``events`` and their deliveries as
        :meth:`record` does, all in ONE statement on ``connection`` (PostgreSQL: the effect, the
        events and the deliveries each a WITH; the events select from the effect's row, the
        deliveries their positions from the events' RETURNING). Whether the effect returned its
        row. Run outside any transaction, that statement is the whole commit of a use case whose
        change is one statement (an order, a one-line reservation), where BEGIN, three or more
        INSERTs and COMMIT were as many round trips: atomic as the transaction was, the change
        and its events are stored together or not at all.

        Built once per effect and shape (how many events, how many deliveries), so that
        SQLAlchemy compiles each once: the rows are parameters (named apart from the effect's,
        ``outbox_…``) of SELECTs in a UNION ALL, not a multi-row VALUES, which SQLAlchemy
        would compile anew at every call. The effect must be cacheable likewise."""
        event_rows, delivery_rows = self._rows(events)
        shape = (effect, len(event_rows), len(delivery_rows))
        statement = self._with_effect.get(shape)
        if statement is None:
            statement = self._with_effect[shape] = self._recording_with(effect, len(event_rows), len(delivery_rows))
        rows = {
            f"outbox_{kind}{index}_{name}": value
            for kind, kind_rows in (("event", event_rows), ("delivery", delivery_rows))
            for index, row in enumerate(kind_rows)
            for name, value in row.items()
        }
        return bool(connection.execute(statement, {**parameters, **rows}).scalar_one())

    def _recording_with(self, effect: ReturningDML, events: int, deliveries: int) -> Select[Any]:
        """The statement of :meth:`record_with` for ``events`` events and ``deliveries`` deliveries:
        it answers how many rows the effect returned."""
        o, d = self._outbox, self._deliveries
        done = effect.cte("effect")
        statement = select(func.count()).select_from(done)
        if not events:
            return statement

        def parameter(kind: str, index: int, column: Column[Any]) -> BindParameter[Any]:
            return bindparam(f"outbox_{kind}{index}_{column.name}", type_=column.type)

        event_columns = [o.c[name] for name in _EVENT_COLUMNS]
        recorded = (
            insert(o)
            .from_select(
                _EVENT_COLUMNS,
                union_all(
                    *(
                        select(*(parameter("event", index, column) for column in event_columns)).select_from(done)
                        for index in range(events)
                    )
                ),
            )
            .returning(o.c.position, o.c.event_id)
            .cte("recorded_events")
        )
        statement = statement.add_cte(recorded)
        if not deliveries:
            return statement
        delivery_columns = [d.c[name] for name in _DELIVERY_COLUMNS]
        # Each delivery names its event by id, and takes its position from the events' RETURNING.
        stored = insert(d).from_select(
            ["event_position", *_DELIVERY_COLUMNS],
            union_all(
                *(
                    select(
                        recorded.c.position, *(parameter("delivery", index, column) for column in delivery_columns)
                    ).where(recorded.c.event_id == parameter("delivery", index, o.c.event_id))
                    for index in range(deliveries)
                )
            ),
        )
        return statement.add_cte(stored.cte("recorded_deliveries"))

    def _rows(self, events: Sequence[tuple[Any, Event]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The outbox's rows for ``(aggregate id, event)`` pairs, and their deliveries' (each
        naming its event by ``event_id``); :class:`PublishingRefused` where this process may
        not publish."""
        if self._refusal is not None and events:
            raise PublishingRefused(self._refusal)
        now = datetime.now(timezone.utc)
        event_rows: list[dict[str, Any]] = []
        delivery_rows: list[dict[str, Any]] = []
        for aggregate_id, event in events:
            envelope = Envelope.wrap(event)
            event_rows.append(
                {
                    "event_id": envelope.id,
                    "event_type": envelope.type,
                    "aggregate_id": str(aggregate_id),
                    "occurred_at": envelope.occurred_at,
                    "envelope": envelope.to_dict(),
                }
            )
            delivery_rows.extend(
                {
                    "id": uuid.uuid4(),
                    "event_id": envelope.id,
                    "subscriber": subscriber,
                    "event_type": envelope.type,
                    "aggregate_id": str(aggregate_id),
                    "status": PENDING,
                    "attempts": 0,
                    "available_at": now,
                    "recorded_at": now,
                }
                for subscriber in self._subscribers.subscribers(envelope.type)
            )
        return event_rows, delivery_rows

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every commit that recorded events (the dispatcher's wake-up)."""
        self._listeners.append(listener)

    def on_recorded(self, listener: Callable[[Sequence[str]], None]) -> None:
        """Call ``listener`` with the types of the events of every commit that recorded some."""
        self._recorded.append(listener)

    def committed(self, events: Sequence[tuple[Any, Event]] = ()) -> None:
        """Deliveries were made due: by a commit that recorded ``events``, or by a resubmission."""
        self.recorded(events)
        for listener in self._listeners:
            listener()

    def recorded(self, events: Sequence[tuple[Any, Event]]) -> None:
        """A commit recorded ``events``: tell the :meth:`on_recorded` listeners their types."""
        if events and self._recorded:
            types = [str(event.TYPE) for _, event in events]
            for listener in self._recorded:
                listener(types)
