"""Exactly-once effects for at-least-once deliveries.

While the dispatcher runs a subscriber it sets :data:`current_delivery`. A unit of work that
commits inside it records ``(subscriber, event id)`` in its own context's inbox table in the
same transaction as the effect; a redelivered event hits the primary key, the transaction
rolls back, and :class:`AlreadyHandled` tells the dispatcher the work was done before.
Subscribers therefore need no code of their own for deduplication.

On PostgreSQL an effect that is one statement may carry the inbox row in the same statement
(:meth:`Inbox.record_with`, :meth:`Inbox.record_if`), run on its own: a statement is atomic, so
the guarantee is the transaction's, in one round trip.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, CursorResult, Exists, Insert, Table, bindparam, exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate

from infrastructure.database_failures import unique_violation_on


@dataclass(frozen=True)
class Delivery:
    subscriber: str
    event_id: uuid.UUID
    # The stored event as published (JSON), for a subscriber that passes it on as it is: the relay.
    envelope: Mapping[str, Any] = field(default_factory=dict, compare=False)


class AlreadyHandled(Exception):
    """This subscriber already committed its effect for this event."""


_current: ContextVar[Delivery | None] = ContextVar("current_delivery", default=None)


def current_delivery() -> Delivery | None:
    return _current.get()


class delivering:  # lower case: used like a function, ``with delivering(delivery):``
    """Make ``delivery`` the current one for the block; a class rather than a generator made a
    context manager, which costs more than the rest of setting it, once per delivery."""

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery

    def __enter__(self) -> None:
        self._token = _current.set(self._delivery)

    def __exit__(self, *_exc: object) -> None:
        _current.reset(self._token)


def handled(table: Table) -> Exists:
    """Whether ``table`` (an inbox) holds the delivery ``:subscriber``, ``:event_id``: an
    expression, so that a subscriber may ask it in the same statement as a read of its own."""
    columns = table.c
    return exists().where(columns.subscriber == bindparam("subscriber"), columns.event_id == bindparam("event_id"))


class Inbox:
    """One context's inbox. It records only deliveries to that context's own subscribers
    (named ``<context>.…``): a subscriber that calls another context's API during its delivery
    must not leave its delivery in that context's inbox too."""

    def __init__(self, table: Table, context: str) -> None:
        self.table = table
        self._prefix = f"{context}."
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

    def _ours(self) -> Delivery | None:
        delivery = current_delivery()
        return delivery if delivery and delivery.subscriber.startswith(self._prefix) else None

    def handled_parameters(self) -> dict[str, Any] | None:
        """The parameters of :func:`handled` for the delivery being run; None when none of this
        context's subscribers is being delivered to (nothing of it can have been handled)."""
        delivery = self._ours()
        if delivery is None:
            return None
        return {"subscriber": delivery.subscriber, "event_id": delivery.event_id}

    def has_handled(self, session: Session) -> bool:
        """Whether the delivery being run already had its effect (for effects outside the DB)."""
        parameters = self.handled_parameters()
        if parameters is None:
            return False
        return bool(session.execute(self._handled, parameters).scalar())

    def record(self, session: Session) -> None:
        """Record the delivery being run, if any; raise :class:`AlreadyHandled` on a repeat."""
        delivery = self._ours()
        if delivery is None:
            return
        # The subscriber's own changes go to the database first: their constraint errors are
        # failures to retry, not signs of an earlier delivery.
        session.flush()
        self._run_recording(session.connection(), self._record, {}, delivery)

    def record_with(self, connection: Connection, effect: Insert, parameters: Mapping[str, Any]) -> bool:
        """Run ``effect`` (an INSERT, with any WITHs of its own) with ``parameters`` and record the
        delivery being run, in ONE statement on ``connection`` (the inbox row in a WITH; PostgreSQL), so
        that one statement outside any transaction does what a transaction of two did: a
        statement is atomic, both rows are written or neither. False, and nothing run, when no
        delivery of this context is being run; raise :class:`AlreadyHandled` on a repeat (its
        inbox row there already), any other failure as it comes (the effect's own constraints).

        PostgreSQL runs the data-modifying parts of a statement in an order of its choosing, so
        on a repeat either key may refuse it first: an effect whose key comes from the event (not
        one made anew per delivery) may fail on its own key, an IntegrityError retried like any
        failure, not :class:`AlreadyHandled`. Its subscriber asks :func:`handled` first (as the
        mail's does), so that the retry ends there."""
        delivery = self._ours()
        if delivery is None:
            return False
        statement = self._with_record.get(effect)
        if statement is None:  # built once per effect, so that SQLAlchemy compiles it once
            statement = self._with_record[effect] = effect.add_cte(self._recorded_cte)
        self._run_recording(connection, statement, parameters, delivery)
        return True

    def record_if(
        self, connection: Connection, effect: ReturningUpdate[Any], parameters: Mapping[str, Any]
    ) -> bool | None:
        """Run ``effect`` (an UPDATE … RETURNING of at most one row) with ``parameters`` and,
        only if it changed its row, record the delivery being run, in ONE statement on
        ``connection`` (the UPDATE in a WITH the inbox's INSERT selects from; PostgreSQL): atomic,
        so the row is changed and the delivery recorded together or not at all. Whether it
        changed its row; None, and nothing run, when no delivery of this context is being run;
        :class:`AlreadyHandled` on a repeat whose effect could run again."""
        delivery = self._ours()
        if delivery is None:
            return None
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
