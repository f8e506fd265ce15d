"""The dispatcher's side of an outbox: due deliveries claimed under a lease, then settled.

Each method is one short write transaction on the context's database (a claim also settles what
finished, in the same one). Every outcome is recorded only while the claim is still the
recorder's: a dispatcher whose lease ran out must not overwrite what the one that took over
recorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, bindparam, not_, select, update
from sqlalchemy.sql import Select

from infrastructure.db.database import Database
from infrastructure.events.tables import DEAD, DONE, PENDING, OutboxTables, literal_status


@dataclass(frozen=True)
class ClaimedDelivery:
    id: uuid.UUID
    context: str
    subscriber: str
    attempts: int
    envelope: dict[str, Any]
    owner: str


class DeliveryQueue:
    def __init__(self, context: str, database: Database, tables: OutboxTables) -> None:
        self.context = context
        self._database = database
        self._deliveries = tables.deliveries
        # The statements run per round are built once, so that SQLAlchemy compiles each once;
        # what varies are parameters.
        d, o = tables.deliveries, tables.outbox
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
        now = datetime.now(timezone.utc)
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
                earlier.c.status != literal_status(DONE),
            )
            .exists()
        )
        return (
            select(d.c.id)
            .where(
                d.c.status == literal_status(PENDING),
                d.c.available_at <= now,
                (d.c.claimed_until.is_(None)) | (d.c.claimed_until < now),
                not_(held_back),
            )
            .order_by(d.c.event_position)
        )

    def complete(self, deliveries: Sequence[ClaimedDelivery]) -> None:
        """Mark deliveries done, in one transaction however many (the dispatcher batches them);
        ``claimed_by`` stays, telling which dispatcher delivered each."""
        if not deliveries:
            return
        with self._database.session(write=True) as session:
            session.execute(self._complete, {**_claims(deliveries), "now": datetime.now(timezone.utc)})
            session.commit()

    def fail(self, delivery: ClaimedDelivery, error: str, *, retry_at: datetime | None) -> None:
        """Record a failed attempt: due again at ``retry_at``, or dead when it is None."""
        self._update_claimed(
            [delivery],
            status=PENDING if retry_at else DEAD,
            attempts=self._deliveries.c.attempts + 1,
            available_at=retry_at or datetime.now(timezone.utc),
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
        self._update_claimed(deliveries, claimed_until=datetime.now(timezone.utc) + lease)

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


def _claims(deliveries: Sequence[ClaimedDelivery]) -> dict[str, Any]:
    owners = sorted({delivery.owner for delivery in deliveries})
    return {"ids": [delivery.id for delivery in deliveries], "owners": owners}
