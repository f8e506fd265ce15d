"""What the audit context's use cases need from the outside world."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

from contexts.audit.domain import model
from infrastructure.events.delivery import Delivery


@dataclass(frozen=True)
class LoggedEntry:
    """An entry and its place in the log: positions only grow, so they order entries exactly."""

    position: int
    entry: model.AuditEntry


class AuditEntryRepository(Protocol):
    """Append-only: there is no way to change or remove an entry."""

    def append(self, entry: model.AuditEntry) -> None: ...

    def list(
        self,
        *,
        limit: int,
        before_position: int | None = None,
        event_type: str | None = None,
        entity_id: uuid.UUID | None = None,
    ) -> list[LoggedEntry]:
        """Matching entries, newest first, all of them before ``before_position`` if given."""
        ...


class AuditUnitOfWork(Protocol):
    @property
    def entries(self) -> AuditEntryRepository: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True, delivery: Delivery | None = None) -> AuditUnitOfWork:
        """A unit of work; made for ``delivery``, its commit records it in the context's inbox."""
        ...
