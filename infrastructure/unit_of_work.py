"""The transaction boundary of a use case, on SQLAlchemy.

Rolls back unless told to commit; after a commit, hands the events recorded by the
aggregates it saw to the publisher. Repositories never commit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy.orm import Session

from infrastructure.db import Database
from infrastructure.events.bus import EventPublisher


class RecordsEvents(Protocol):
    events: list[Any]


class SqlAlchemyUnitOfWork(ABC):
    """Subclasses open their repositories in :meth:`_open` on the session."""

    session: Session

    def __init__(self, database: Database, publisher: EventPublisher, *, write: bool = True) -> None:
        self._database = database
        self._publisher = publisher
        self._write = write
        self.seen: list[RecordsEvents] = []

    def __enter__(self) -> Self:
        self.session = self._database.session(write=self._write)
        self.seen = []
        self._open(self.session)
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

    def commit(self) -> None:
        self.session.commit()
        events = [event for aggregate in self.seen for event in aggregate.events]
        for aggregate in self.seen:
            aggregate.events.clear()
        self._publisher.publish(events)

    def rollback(self) -> None:
        self.session.rollback()
