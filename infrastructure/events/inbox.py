"""Exactly-once effects for at-least-once deliveries.

A subscriber makes its unit of work for the :class:`~infrastructure.events.delivery.Delivery` it
was handed; the unit of work's commit records ``(subscriber, event id)`` in its context's inbox
table in the same transaction as the effect; a redelivered event hits the primary key, the
transaction rolls back, and :class:`AlreadyHandled` tells the dispatcher the work was done
before. Subscribers therefore need no code of their own for deduplication.

On PostgreSQL an effect that is one statement may carry the inbox row in the same statement
(:meth:`Inbox.record_with`, :meth:`Inbox.record_if`), run on its own: a statement is atomic, so
the guarantee is the transaction's, in one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, CursorResult, Exists, Insert, Table, bindparam, exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate

from infrastructure.db.failures import unique_violation_on
from infrastructure.events.delivery import Delivery


class AlreadyHandled(Exception):
    """This subscriber already committed its effect for this event."""


def handled(table: Table) -> Exists:
    """Whether ``table`` (an inbox) holds the delivery ``:subscriber``, ``:event_id``: an
    expression, so that a subscriber may ask it in the same statement as a read of its own."""
    columns = table.c
    return exists().where(columns.subscriber == bindparam("subscriber"), columns.event_id == bindparam("event_id"))


class Inbox:
    """One context's inbox: the deliveries its subscribers' units of work committed."""

    def __init__(self, table: Table) -> None:
        self.table = table
        # Built once, so that SQLAlchemy compiles each once: one of them runs in every delivery.
        self._handled = select(handled(table))
        # Its parameters are :meth:`_recording`'s, named apart from any effect's it joins.
        self._record = insert(table).values(
            subscriber=bindparam("inbox_subscriber"),
            event_id=bindparam("inbox_event_id"),
            handled_at=bindparam("inbox_handled_at"),
        )
        self._recorded_cte = self._record.cte("inbox_record")
        self._with_record: dict[Insert, Insert] = {}
        self._recorded_if: dict[ReturningUpdate[Any], Insert] = {}

    @staticmethod
    def handled_parameters(delivery: Delivery) -> dict[str, Any]:
        """The parameters of :func:`handled` for ``delivery``."""
        return {"subscriber": delivery.subscriber, "event_id": delivery.event_id}

    def has_handled(self, session: Session, delivery: Delivery) -> bool:
        """Whether ``delivery`` already had its effect (for effects outside the database)."""
        return bool(session.execute(self._handled, self.handled_parameters(delivery)).scalar())

    def record(self, session: Session, delivery: Delivery) -> None:
        """Record ``delivery``; raise :class:`AlreadyHandled` on a repeat."""
        # The subscriber's own changes go to the database first: their constraint errors are
        # failures to retry, not signs of an earlier delivery.
        session.flush()
        self._run_recording(session.connection(), self._record, {}, delivery)

    def record_with(
        self, connection: Connection, effect: Insert, parameters: Mapping[str, Any], delivery: Delivery
    ) -> None:
        """Run ``effect`` (an INSERT, with any WITHs of its own) with ``parameters`` and record
        ``delivery``, in ONE statement on ``connection`` (the inbox row in a WITH; PostgreSQL), so
        that one statement outside any transaction does what a transaction of two did: a
        statement is atomic, both rows are written or neither. Raise :class:`AlreadyHandled` on a repeat (its
        inbox row there already), any other failure as it comes (the effect's own constraints).

        PostgreSQL runs the data-modifying parts of a statement in an order of its choosing, so
        on a repeat either key may refuse it first: an effect whose key comes from the event (not
        one made anew per delivery) may fail on its own key, an IntegrityError retried like any
        failure, not :class:`AlreadyHandled`. Its subscriber asks :func:`handled` first (as the
        mail's does), so that the retry ends there."""
        statement = self._with_record.get(effect)
        if statement is None:  # built once per effect, so that SQLAlchemy compiles it once
            statement = self._with_record[effect] = effect.add_cte(self._recorded_cte)
        self._run_recording(connection, statement, parameters, delivery)

    def record_if(
        self, connection: Connection, effect: ReturningUpdate[Any], parameters: Mapping[str, Any], delivery: Delivery
    ) -> bool:
        """Run ``effect`` (an UPDATE … RETURNING of at most one row) with ``parameters`` and,
        only if it changed its row, record ``delivery``, in ONE statement on
        ``connection`` (the UPDATE in a WITH the inbox's INSERT selects from; PostgreSQL): atomic,
        so the row is changed and the delivery recorded together or not at all. Whether it
        changed its row; :class:`AlreadyHandled` on a repeat whose effect could run again."""
        statement = self._recorded_if.get(effect)
        if statement is None:  # built once per effect, so that SQLAlchemy compiles it once
            changed = effect.cte("effect")
            columns = self.table.c
            statement = self._recorded_if[effect] = (
                insert(self.table)
                .from_select(
                    ["subscriber", "event_id", "handled_at"],
                    select(
                        bindparam("inbox_subscriber", type_=columns.subscriber.type),
                        bindparam("inbox_event_id", type_=columns.event_id.type),
                        bindparam("inbox_handled_at", type_=columns.handled_at.type),
                    ).select_from(changed),
                )
                .add_cte(changed)
                .returning(columns.event_id)  # what counts the row: a WITH of RETURNING hides rowcount
            )
        return self._run_recording(connection, statement, parameters, delivery).first() is not None

    def _run_recording(
        self, connection: Connection, statement: Insert, parameters: Mapping[str, Any], delivery: Delivery
    ) -> CursorResult[Any]:
        """Run a statement that records ``delivery`` with an effect."""
        try:
            return connection.execute(statement, {**parameters, **self._recording(delivery)})
        except IntegrityError as error:
            if self._is_repeat(error):
                raise AlreadyHandled(f"{delivery.subscriber} already handled event {delivery.event_id}") from error
            raise

    @staticmethod
    def _recording(delivery: Delivery) -> dict[str, Any]:
        """The parameters of the inbox row that records ``delivery``."""
        return {
            "inbox_subscriber": delivery.subscriber,
            "inbox_event_id": delivery.event_id,
            "inbox_handled_at": datetime.now(timezone.utc),
        }

    def _is_repeat(self, error: IntegrityError) -> bool:
        """Whether ``error`` is the inbox's key refusing a delivery recorded before. Any other
        refusal (a NOT NULL or check on the inbox, the effect's own constraints) is a failure
        to retry, never a sign the work was done."""
        return unique_violation_on(error, (self.table.name,))
