"""The transaction boundary of a use case, on SQLAlchemy.

Rolls back unless told to commit. A commit also writes, in the same transaction, the events
recorded by the aggregates it saw into the context's outbox, and, when it runs inside an
event delivery, the delivery into the context's inbox. Repositories never commit.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy.orm import Session

from infrastructure.db import Database
from infrastructure.events.inbox import Inbox, current_delivery
from infrastructure.events.outbox import Outbox


class RecordsEvents(Protocol):
    id: Any
    events: list[Any]


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
    ) -> None:
        self._database = database
        self._outbox = outbox
        self._inbox = inbox
        self._write = write
        self.seen: list[RecordsEvents] = []

    def __enter__(self) -> Self:
        self.session = self._database.session(write=self._write)
        self.seen = []
        try:
            self._open(self.session)
        except BaseException:
            self.session.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.session.rollback()
        self.session.close()

    @abstractmethod
    def _open(self, session: Session) -> None:
        """Create this unit of work's repositories on ``session``."""

    def already_handled(self) -> bool:
        """Whether the event being delivered already had its effect (for effects the database
        cannot roll back, such as sending mail, which check before acting)."""
        return self._inbox is not None and self._inbox.has_handled(self.session)

    def delivered_event_id(self) -> uuid.UUID | None:
        """The id of the event being delivered, None outside a delivery: subscribers receive
        only the event, yet record or derive what they do from its id."""
        delivery = current_delivery()
        return delivery.event_id if delivery is not None else None

    def commit(self) -> None:
        events = [(aggregate.id, event) for aggregate in self.seen for event in aggregate.events]
        if events:
            if self._outbox is None:
                raise RuntimeError(f"{type(self).__name__} has events to publish but no outbox")
            self._outbox.record(self.session, events)
        if self._inbox is not None:
            self._inbox.record(self.session)
        self.session.commit()
        for aggregate in self.seen:
            aggregate.events.clear()
        if events and self._outbox is not None:
            self._outbox.committed()

    def rollback(self) -> None:
        self.session.rollback()
