"""One context's outbox: its events recorded with the change, and every delivery's progress.

:meth:`Outbox.record` runs inside the publishing unit of work's transaction. Everything else
here is what the dispatcher and the ``shop events`` commands do to the delivery records, each
in its own short write transaction on the context's database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    String,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    not_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate
from sqlalchemy.sql.elements import BindParameter

from infrastructure.db.database import Database
from infrastructure.events.envelope import Envelope, Event
from infrastructure.events.tables import DEAD, DONE, PENDING, OutboxTables

__all__ = [
    "DEAD",
    "DONE",
    "PENDING",
    "ClaimedDelivery",
    "DeadLetter",
    "Outbox",
    "PublishingRefused",
    "SubscriberStatus",
]


class PublishingRefused(RuntimeError):
    """Events were about to be recorded in the outbox of a context this process does not serve.

    Its subscribers, here and elsewhere, are reached from the process that serves it (its
    dispatcher and relay); recorded here, the events would get no delivery at all. Raised
    before the transaction commits, so the change is not made either."""


class SubscriberDirectory(Protocol):
    def subscribers(self, event_type: str) -> list[str]: ...


@dataclass(frozen=True)
class ClaimedDelivery:
    id: uuid.UUID
    context: str
    subscriber: str
    attempts: int
    envelope: dict[str, Any]
    owner: str


@dataclass(frozen=True)
class SubscriberStatus:
    context: str
    subscriber: str
    pending: int
    retrying: int
    dead: int
    oldest_incomplete: datetime | None


@dataclass(frozen=True)
class DeadLetter:
    id: uuid.UUID
    context: str
    subscriber: str
    event_type: str
    event_id: str
    attempts: int
    last_error: str | None
    recorded_at: datetime


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


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _status(status: str) -> ColumnElement[str]:
    """A status written into the SQL rather than bound: the partial indexes (tables.py) serve a
    query only when its WHERE repeats their condition, and PostgreSQL cannot tell that a
    parameter of a prepared statement's generic plan does."""
    return literal_column(f"'{status}'", String(16))


class Outbox:
    def __init__(
        self, context: str, database: Database, tables: OutboxTables, subscribers: SubscriberDirectory
    ) -> None:
        self.context = context
        self._database = database
        self._outbox = tables.outbox
        self._deliveries = tables.deliveries
        self._subscribers = subscribers
        self._listeners: list[Callable[[], None]] = []
        self._refusal: str | None = None
        self._with_effect: dict[tuple[ReturningDML, int, int], Select[Any]] = {}
        # The statements run per commit or per batch are built once, so that SQLAlchemy
        # compiles each once; what varies are parameters.
        d, o = self._deliveries, self._outbox
        self._insert_deliveries = insert(d).values(  # "event_id": a parameter of each row
            event_position=select(o.c.position)
            .where(o.c.event_id == bindparam("event_id", type_=o.c.event_id.type))
            .scalar_subquery()
        )
        self._any_due = self._due().limit(1)
        self._claim = (
            update(d)
            .where(d.c.id.in_(self._due().limit(bindparam("limit")).with_for_update(skip_locked=True)))
            .values(claimed_until=bindparam("until"), claimed_by=bindparam("owner"))
            .returning(
                d.c.id,
                d.c.subscriber,
                d.c.attempts,
                d.c.event_position,
                select(o.c.envelope).where(o.c.position == d.c.event_position).scalar_subquery(),
            )
        )
        self._complete = (
            update(d)
            .where(*self._still_claimed())
            .values(
                status=DONE,
                attempts=d.c.attempts + 1,
                completed_at=bindparam("now"),
                last_error=None,
                claimed_until=None,
            )
        )

    # -- publishing -------------------------------------------------------------------------

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
        now = _now()
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

    def committed(self) -> None:
        for listener in self._listeners:
            listener()

    # -- dispatching ------------------------------------------------------------------------

    def claim(
        self, limit: int, *, owner: str, lease: timedelta, completing: Sequence[ClaimedDelivery] = ()
    ) -> list[ClaimedDelivery]:
        """Take up to ``limit`` due deliveries for ``lease``, oldest event first, after marking
        ``completing`` done (as :meth:`complete` does) in the same transaction.

        A delivery waits while an earlier event of the same aggregate is still incomplete for
        the same subscriber (pending, in flight or dead), so each subscriber sees one
        aggregate's events in the order they were recorded, and one claim never holds two
        deliveries of one aggregate to one subscriber.

        The dispatcher records what finished and takes more in one write transaction per
        round, and a completion frees the next event of its aggregate for the same claim.
        With nothing to complete, a read looks first: when nothing is due, as for most polls,
        for the wake-ups of commits whose events another dispatcher took, and for every round's
        look at the outboxes nobody is publishing to, no write transaction is begun (on SQLite
        it would queue for the writer lock with the web requests). That read is one statement
        outside any transaction: on PostgreSQL a BEGIN and a ROLLBACK around it would be two
        more round trips per outbox and round, in every process.
        """
        now = _now()
        if not completing:
            if limit <= 0:
                return []
            with self._database.reading() as connection:
                if connection.execute(self._any_due, {"now": now}).first() is None:
                    return []
        rows: Sequence[Any] = []
        with self._database.session(write=True) as session:
            if completing:
                session.execute(self._complete, {**_claims(completing), "now": now})
            if limit > 0:
                parameters = {"now": now, "limit": limit, "until": now + lease, "owner": owner}
                rows = session.execute(self._claim, parameters).all()
            session.commit()
        # RETURNING promises no order; the workers take the oldest events first.
        return [
            ClaimedDelivery(row[0], self.context, row[1], row[2], row[4], owner)
            for row in sorted(rows, key=lambda row: row.event_position)
        ]

    def _due(self) -> Select[Any]:
        """The ids of deliveries that may run at ``:now``, oldest event first (from an alias of
        the table, so that it can be the subquery of an UPDATE of the table)."""
        d, earlier = self._deliveries.alias("due"), self._deliveries.alias("earlier")
        now = bindparam("now", type_=d.c.available_at.type)
        held_back = (
            select(earlier.c.id)
            .where(
                earlier.c.subscriber == d.c.subscriber,
                earlier.c.aggregate_id == d.c.aggregate_id,
                earlier.c.event_position < d.c.event_position,
                earlier.c.status != _status(DONE),
            )
            .exists()
        )
        return (
            select(d.c.id)
            .where(
                d.c.status == _status(PENDING),
                d.c.available_at <= now,
                (d.c.claimed_until.is_(None)) | (d.c.claimed_until < now),
                not_(held_back),
            )
            .order_by(d.c.event_position)
        )

    def complete(self, deliveries: Sequence[ClaimedDelivery]) -> None:
        """Mark deliveries done, in one transaction however many (the dispatcher batches them);
        ``claimed_by`` stays, telling which dispatcher delivered each.

        Every outcome is recorded only while the claim is still the recorder's: a dispatcher
        whose lease ran out must not overwrite what the one that took over recorded.
        """
        if not deliveries:
            return
        with self._database.session(write=True) as session:
            session.execute(self._complete, {**_claims(deliveries), "now": _now()})
            session.commit()

    def fail(self, delivery: ClaimedDelivery, error: str, *, retry_at: datetime | None) -> None:
        """Record a failed attempt: due again at ``retry_at``, or dead when it is None."""
        self._update_claimed(
            [delivery],
            status=PENDING if retry_at else DEAD,
            attempts=self._deliveries.c.attempts + 1,
            available_at=retry_at or _now(),
            last_error=error,
            claimed_until=None,
            claimed_by=None,
        )

    def release(self, deliveries: Sequence[ClaimedDelivery]) -> None:
        """Hand back claims that were never started (shutdown), for any dispatcher to take."""
        self._update_claimed(deliveries, claimed_until=None, claimed_by=None)

    def extend(self, deliveries: Sequence[ClaimedDelivery], lease: timedelta) -> None:
        """Renew the leases of deliveries still queued or running, so that no other dispatcher,
        nor this one, takes them over while they are in hand."""
        self._update_claimed(deliveries, claimed_until=_now() + lease)

    def _update_claimed(self, deliveries: Sequence[ClaimedDelivery], **values: Any) -> None:
        if not deliveries:
            return
        d = self._deliveries
        with self._database.session(write=True) as session:
            session.execute(update(d).where(*self._still_claimed()).values(**values), _claims(deliveries))
            session.commit()

    def _still_claimed(self) -> list[ColumnElement[bool]]:
        """The deliveries ``:ids`` that are still pending under a claim of one of ``:owners``
        (parameters as :func:`_claims` makes them)."""
        d = self._deliveries
        return [
            d.c.id.in_(bindparam("ids", expanding=True)),
            d.c.status == PENDING,
            d.c.claimed_by.in_(bindparam("owners", expanding=True)),
        ]

    # -- operating --------------------------------------------------------------------------

    def status(self) -> list[SubscriberStatus]:
        """What waits per subscriber: the subscribers with deliveries not done, only.

        Done deliveries are not counted (nor read: they are most of the table until pruned),
        so a subscriber that has finished everything does not appear.
        """
        d = self._deliveries
        query = (
            select(
                d.c.subscriber,
                func.count().filter(and_(d.c.status == PENDING, d.c.attempts == 0)),
                func.count().filter(and_(d.c.status == PENDING, d.c.attempts > 0)),
                func.count().filter(d.c.status == DEAD),
                func.min(d.c.recorded_at),
            )
            .where(d.c.status != _status(DONE))
            .group_by(d.c.subscriber)
            .order_by(d.c.subscriber)
        )
        with self._database.session(write=False) as session:
            return [
                SubscriberStatus(self.context, subscriber, pending, retrying, dead, _aware(oldest))
                for subscriber, pending, retrying, dead, oldest in session.execute(query)
            ]

    def dead_letters(self) -> list[DeadLetter]:
        """Dead deliveries, oldest event first."""
        d, o = self._deliveries, self._outbox
        query = (
            select(d, o.c.event_id)
            .join(o, o.c.position == d.c.event_position)
            # "Not done" adds nothing to "dead" but lets the index of incomplete deliveries serve.
            .where(d.c.status != _status(DONE), d.c.status == DEAD)
        )
        # Sorted here, not by the query: SQLite would rather walk every delivery in the order of
        # the (event_position, subscriber) key than sort the few dead ones.
        with self._database.session(write=False) as session:
            rows = sorted(session.execute(query), key=lambda row: (row.event_position, row.subscriber))
            return [
                DeadLetter(
                    id=row.id,
                    context=self.context,
                    subscriber=row.subscriber,
                    event_type=row.event_type,
                    event_id=str(row.event_id),
                    attempts=row.attempts,
                    last_error=row.last_error,
                    recorded_at=row.recorded_at,
                )
                for row in rows
            ]

    def retry(self, ids: Iterable[uuid.UUID] | None = None) -> int:
        """Make dead deliveries (the given ones, or all) due now with fresh attempts."""
        d = self._deliveries
        statement = update(d).where(d.c.status != _status(DONE), d.c.status == DEAD)  # as in dead_letters
        if ids is not None:
            statement = statement.where(d.c.id.in_(list(ids)))
        with self._database.session(write=True) as session:
            count = session.connection().execute(
                statement.values(status=PENDING, attempts=0, available_at=_now())
            ).rowcount
            session.commit()
        if count:
            self.committed()
        return int(count)

    def hasten(self, subscriber: str) -> int:
        """Make ``subscriber``'s deliveries that wait for a later retry due now, their attempts
        kept: for the relay once the broker is back, whose backoff would otherwise keep the
        backlog of an outage waiting for minutes more. Wakes the dispatcher."""
        d = self._deliveries
        now = _now()
        statement = (
            update(d)
            .where(d.c.status != _status(DONE), d.c.status == PENDING)  # "not done": the partial index
            .where(d.c.subscriber == subscriber, d.c.available_at > now)
            .values(available_at=now)
        )
        with self._database.session(write=True) as session:
            count = session.connection().execute(statement).rowcount
            session.commit()
        if count:
            self.committed()
        return int(count)

    def prune(self, completed_before: datetime) -> int:
        """Delete deliveries completed before the cutoff, then events nothing waits for."""
        d, o = self._deliveries, self._outbox
        with self._database.session(write=True) as session:
            pruned = session.connection().execute(
                delete(d).where(d.c.status == DONE, d.c.completed_at < completed_before)
            ).rowcount
            session.execute(
                delete(o).where(
                    o.c.occurred_at < completed_before,
                    not_(select(d.c.id).where(d.c.event_position == o.c.position).exists()),
                )
            )
            session.commit()
        return int(pruned)


def _claims(deliveries: Sequence[ClaimedDelivery]) -> dict[str, Any]:
    owners = sorted({delivery.owner for delivery in deliveries})
    return {"ids": [delivery.id for delivery in deliveries], "owners": owners}


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)
