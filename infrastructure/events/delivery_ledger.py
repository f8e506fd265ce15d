"""The operator's side of an outbox (``shop events``, housekeeping): what waits per subscriber,
the dead letters, and what an operator does about them: retry, hasten, prune."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, delete, func, not_, select, update

from infrastructure.db.database import Database
from infrastructure.events.tables import DEAD, DONE, PENDING, OutboxTables, literal_status


@dataclass(frozen=True)
class SubscriberStatus:
    context: str
    subscriber: str
    pending: int
    retrying: int
    dead: int
    oldest_incomplete: datetime | None
    # Of the deliveries still to be tried (dead letters left out): how far the subscriber lags.
    oldest_waiting: datetime | None


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


class DeliveryLedger:
    def __init__(self, context: str, database: Database, tables: OutboxTables, wake: Callable[[], None]) -> None:
        """``wake``: called when deliveries were made due now (the dispatcher's wake-up)."""
        self.context = context
        self._database = database
        self._outbox = tables.outbox
        self._deliveries = tables.deliveries
        self._wake = wake

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
                func.min(d.c.recorded_at).filter(d.c.status == PENDING),
            )
            .where(d.c.status != literal_status(DONE))
            .group_by(d.c.subscriber)
            .order_by(d.c.subscriber)
        )
        with self._database.session(write=False) as session:
            return [
                SubscriberStatus(self.context, subscriber, pending, retrying, dead, _aware(oldest), _aware(waiting))
                for subscriber, pending, retrying, dead, oldest, waiting in session.execute(query)
            ]

    def dead_letters(self) -> list[DeadLetter]:
        """Dead deliveries, oldest event first."""
        d, o = self._deliveries, self._outbox
        query = (
            select(d, o.c.event_id)
            .join(o, o.c.position == d.c.event_position)
            # "Not done" adds nothing to "dead" but lets the index of incomplete deliveries serve.
            .where(d.c.status != literal_status(DONE), d.c.status == DEAD)
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
        statement = update(d).where(d.c.status != literal_status(DONE), d.c.status == DEAD)  # as in dead_letters
        if ids is not None:
            statement = statement.where(d.c.id.in_(list(ids)))
        with self._database.session(write=True) as session:
            count = (
                session.connection()
                .execute(statement.values(status=PENDING, attempts=0, available_at=datetime.now(timezone.utc)))
                .rowcount
            )
            session.commit()
        if count:
            self._wake()
        return int(count)

    def hasten(self, subscriber: str) -> int:
        """Make ``subscriber``'s deliveries that wait for a later retry due now, their attempts
        kept: for the relay once the broker is back, whose backoff would otherwise keep the
        backlog of an outage waiting for minutes more. Wakes the dispatcher."""
        d = self._deliveries
        now = datetime.now(timezone.utc)
        statement = (
            update(d)
            .where(d.c.status != literal_status(DONE), d.c.status == PENDING)  # "not done": the partial index
            .where(d.c.subscriber == subscriber, d.c.available_at > now)
            .values(available_at=now)
        )
        with self._database.session(write=True) as session:
            count = session.connection().execute(statement).rowcount
            session.commit()
        if count:
            self._wake()
        return int(count)

    def prune(self, completed_before: datetime) -> int:
        """Delete deliveries completed before the cutoff, then events nothing waits for."""
        d, o = self._deliveries, self._outbox
        with self._database.session(write=True) as session:
            pruned = (
                session.connection()
                .execute(delete(d).where(d.c.status == DONE, d.c.completed_at < completed_before))
                .rowcount
            )
            session.execute(
                delete(o).where(
                    o.c.occurred_at < completed_before,
                    not_(select(d.c.id).where(d.c.event_position == o.c.position).exists()),
                )
            )
            session.commit()
        return int(pruned)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)
