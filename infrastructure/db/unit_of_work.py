"""The transaction boundary of a use case, on SQLAlchemy.

Rolls back unless told to commit. A commit also writes, in the same transaction, the events
recorded by the aggregates it saw into the context's outbox, and, when it was made for an event
delivery (``delivery=``), the delivery into the context's inbox. Repositories never commit.

A delivery whose whole effect is one INSERT (an audit entry, a mail's record; see
:meth:`~SqlAlchemyUnitOfWork.stage`) commits on PostgreSQL as
one statement outside any transaction, the inbox row in a WITH of it: atomic as the
transaction was, one round trip where BEGIN, the statements and COMMIT were several. So does, with its events
and their deliveries in WITHs of it, a use case whose change is one statement (an order, a
one-line reservation; :meth:`~SqlAlchemyUnitOfWork.commit_with_events_if`).

The write units of work made for the deliveries of one batch (the dispatcher delivering several
events to one subscriber; ``Delivery.transaction``, a :class:`SharedTransaction`) share one
session: each is a SAVEPOINT in it, its commit a RELEASE, and the batch commits them together,
so many deliveries cost one write transaction (one BEGIN, one writer turn on SQLite, one
commit) instead of one each. They must all write one database: a second one could not be
committed atomically with the first.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Protocol, Self, cast

from sqlalchemy import Insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql.dml import ReturningUpdate

from infrastructure.db.database import Database
from infrastructure.errors import OutcomeUnknown
from infrastructure.events.delivery import Delivery
from infrastructure.events.inbox import Inbox
from infrastructure.events.outbox import Outbox, ReturningDML

# What a repository is handed to stage a write with (:meth:`SqlAlchemyUnitOfWork.stage`).
Stage = Callable[[Insert, dict[str, Any]], None]


class RecordsEvents(Protocol):
    id: Any
    events: list[Any]


class SharedTransaction:
    """The write session the units of work of one block share, committed by :meth:`commit`;
    what the block does not commit is rolled back when it ends."""

    def __init__(self) -> None:
        self._opened: tuple[Database, Session] | None = None
        self._after_commit: list[Callable[[], None]] = []

    def session(self, database: Database) -> Session:
        """The block's write session on ``database``, opened (and its write turn taken) on first
        use. A second database is refused: the two commits could not be one, and a failure
        between them would leave half a batch that its retry, one delivery at a time, repeats."""
        if self._opened is None:
            self._opened = (database, database.session(write=True))
        written, session = self._opened
        if database is not written:
            raise RuntimeError(
                f"a shared transaction writes one database: {written.name} is written,"
                f" a unit of work on {database.name} was opened"
            )
        return session

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Have ``callback`` run once the block has committed: a unit of work's commit inside it
        is only a RELEASE, and whoever its events would wake must not look for them before.
        Once each: one commit wakes an outbox's dispatcher once, however many units published."""
        if callback not in self._after_commit:
            self._after_commit.append(callback)

    def commit(self) -> list[Callable[[], None]]:
        """Commit, and hand back the :meth:`after_commit` callbacks for the caller to run after
        the block: their failure is not the transaction's, which has committed."""
        if self._opened is not None:
            self._opened[1].commit()
        callbacks, self._after_commit = self._after_commit, []
        return callbacks

    def close(self) -> None:
        opened, self._opened, self._after_commit = self._opened, None, []
        if opened is not None:
            _discard(opened[1])


def _discard(session: Session) -> None:
    """Roll back and close ``session``. Closed even when the rollback fails (a lost connection,
    a disk I/O error): on SQLite closing gives the process's write turn back, and a turn never
    given back makes every later write wait for it in vain."""
    try:
        session.rollback()
    finally:
        session.close()


class CommitAnswerLost(OperationalError, OutcomeUnknown):
    """The connection was lost while the server ran a commit (a COMMIT, or a statement that
    is a whole transaction): unlike a statement lost before its commit was sent, it may have
    been committed. A database error still, answered as one (503)."""


@contextmanager
def _committing() -> Iterator[None]:
    """Raise a connection lost during the commit in the block as :class:`CommitAnswerLost`."""
    try:
        yield
    except DBAPIError as error:
        if not error.connection_invalidated or error.orig is None:
            raise
        raise CommitAnswerLost(error.statement, error.params, error.orig, connection_invalidated=True) from error


@contextmanager
def shared_transaction() -> Iterator[SharedTransaction]:
    """A transaction for the write units of work made for the deliveries that carry it
    (``Delivery.transaction``), on one database; nothing of theirs is committed unless the block
    calls ``commit()``."""
    transaction = SharedTransaction()
    try:
        yield transaction
    finally:
        transaction.close()


class SqlAlchemyUnitOfWork(ABC):
    """Subclasses open their repositories in :meth:`_open` on the session."""

    session: Session

    def __init__(
        self,
        database: Database,
        *,
        outbox: Outbox | None = None,
        inbox: Inbox | None = None,
        write: bool = True,
        delivery: Delivery | None = None,
    ) -> None:
        if delivery is not None and inbox is None:
            raise ValueError(f"{type(self).__name__} has no inbox to record the delivery to {delivery.subscriber} in")
        self._database = database
        self._outbox = outbox
        self._inbox = inbox
        self._write = write
        self._delivery = delivery
        self.seen: list[RecordsEvents] = []
        self._shared: SharedTransaction | None = None
        self._savepoint: SessionTransaction | None = None
        self._staged: list[tuple[Insert, dict[str, Any]]] = []

    def __enter__(self) -> Self:
        transaction = self._delivery.transaction if self._delivery is not None and self._write else None
        self._shared = cast(SharedTransaction | None, transaction)
        if self._shared is not None:
            self.session = self._shared.session(self._database)
            self._savepoint = self.session.begin_nested()
        else:
            self.session = self._database.session(write=self._write)
        self.seen = []
        self._staged = []
        try:
            self._open(self.session)
        except BaseException:
            self._end()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._end()

    def _end(self) -> None:
        """Undo what was not committed: the savepoint in a shared transaction (whose session
        stays open for the next unit of work), else the whole session."""
        if self._savepoint is not None:
            if self._savepoint.is_active:
                self._savepoint.rollback()
            self._savepoint = None
            return
        _discard(self.session)

    @abstractmethod
    def _open(self, session: Session) -> None:
        """Create this unit of work's repositories on ``session``."""

    def already_handled(self) -> bool:
        """Whether the delivery this unit of work was made for already had its effect (for
        effects the database cannot roll back, such as sending mail, which check before acting);
        False when it was made for none."""
        return (
            self._delivery is not None
            and self._inbox is not None
            and self._inbox.has_handled(self.session, self._delivery)
        )

    def stage(self, effect: Insert, parameters: dict[str, Any]) -> None:
        """Have ``effect``, an INSERT (with any WITHs of its own), run with ``parameters`` by
        :meth:`commit` (or :meth:`write_staged`): for writes that nothing in the unit of work
        reads back (an audit entry, a mail's record), so that the commit may
        send the one staged with the delivery's inbox row as one statement."""
        self._staged.append((effect, parameters))

    def write_staged(self) -> None:
        """Run what was staged, in order, on the session: before anything that must see it."""
        staged, self._staged = self._staged, []
        if staged:
            connection = self.session.connection()
            for effect, parameters in staged:
                connection.execute(effect, parameters)

    def _commit_alone(self) -> bool:
        """Commit a unit of work whose whole change is one staged INSERT, inside one of its
        context's deliveries, as ONE statement outside any transaction that runs it and writes
        the delivery's inbox row (:meth:`Inbox.record_with`), where BEGIN, the INSERTs and
        COMMIT were four round trips or more. Only on PostgreSQL (SQLite has no INSERT in a WITH, and
        there a transaction costs no round trip), only when the session has not begun one and
        holds no change of its own, and never in a shared transaction (a batch's savepoints)."""
        if len(self._staged) != 1 or not self._may_commit_alone():
            return False
        assert self._inbox is not None and self._delivery is not None
        effect, parameters = self._staged[0]
        with self._database.autocommit() as connection:
            self._inbox.record_with(connection, effect, parameters, self._delivery)
        self._staged = []
        return True

    def _may_commit_alone(self) -> bool:
        """Whether a commit may be one statement on its own (see :meth:`_commit_alone`)."""
        return not (
            self._inbox is None
            or self._delivery is None
            or not self._may_run_alone()
            or any(aggregate.events for aggregate in self.seen)
        )

    def _may_run_alone(self) -> bool:
        """Whether the unit of work may commit as one statement outside any transaction: on
        PostgreSQL (SQLite has no INSERT or UPDATE in a WITH, and there a transaction costs no
        round trip), never in a shared transaction (a batch's savepoints), and only when the
        session has not begun one and holds no change of its own."""
        return not (
            self._shared is not None
            or self._database.engine.dialect.name != "postgresql"
            or self.session.in_transaction()
            or self.session.new
            or self.session.dirty
            or self.session.deleted
        )

    def commit_with_events_if(
        self, effect: ReturningDML, parameters: dict[str, Any], aggregates: Sequence[RecordsEvents]
    ) -> bool | None:
        """Run ``effect``, an INSERT or UPDATE … RETURNING at most one row, and commit it with the
        events ``aggregates`` recorded if it returned its row, as ONE statement outside any
        transaction (:meth:`Outbox.record_with`), where BEGIN, the effect's statements, the
        outbox's two INSERTs and COMMIT were five round trips or more. Whether it returned its
        row (committed then, the events handed to the outbox: the unit of work is done; else
        nothing was changed); None, and nothing run, where a commit cannot be one statement (as
        for :meth:`_commit_alone`, with nothing done in the unit of work yet, and outside any
        delivery of this context, whose inbox row it would have to write too), for the caller to
        do it in steps instead. The effect's own failures (its constraints) come as they are."""
        if self._outbox is None or self._staged or self.seen or not self._may_run_alone() or self._delivery is not None:
            return None
        events = [(aggregate.id, event) for aggregate in aggregates for event in aggregate.events]
        with self._database.autocommit() as connection, _committing():
            happened = self._outbox.record_with(connection, effect, parameters, events)
        if happened:
            for aggregate in aggregates:
                aggregate.events.clear()
            if events:
                self._outbox.committed(events)
        return happened

    def commit_alone_if(self, effect: ReturningUpdate[Any], parameters: dict[str, Any]) -> bool | None:
        """Run ``effect``, an UPDATE … RETURNING of at most one row, and commit it with the
        delivery's inbox row if it changed its row, as ONE statement outside any transaction
        (:meth:`Inbox.record_if`), where BEGIN, the UPDATE, the inbox's INSERT and COMMIT were
        four round trips. Whether it changed its row (committed then: the unit of work is done);
        None, and nothing run, where a commit cannot be one statement (as for
        :meth:`_commit_alone`, with nothing done in the unit of work yet), for the caller to
        run it in the unit of work instead."""
        if self._staged or not self._may_commit_alone():
            return None
        assert self._inbox is not None and self._delivery is not None
        with self._database.autocommit() as connection:
            return self._inbox.record_if(connection, effect, parameters, self._delivery)

    def commit(self) -> None:
        events = [(aggregate.id, event) for aggregate in self.seen for event in aggregate.events]
        if self._commit_alone():
            return
        self.write_staged()
        if events:
            if self._outbox is None:
                raise RuntimeError(f"{type(self).__name__} has events to publish but no outbox")
            self._outbox.record(self.session, events)
        if self._inbox is not None and self._delivery is not None:
            self._inbox.record(self.session, self._delivery)
        if self._savepoint is not None:
            self._savepoint.commit()
        else:
            with _committing():
                self.session.commit()
        for aggregate in self.seen:
            aggregate.events.clear()
        if events and self._outbox is not None:
            if self._shared is not None:
                self._shared.after_commit(self._outbox.committed)  # once for the whole batch
                self._shared.after_commit(functools.partial(self._outbox.recorded, events))
            else:
                self._outbox.committed(events)
