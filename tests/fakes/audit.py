"""The audit context's ports in memory: the log and its units of work."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Self

from contexts.audit.application.ports import LoggedEntry
from contexts.audit.domain.model import AuditEntry
from infrastructure.events.delivery import Delivery


class FakeAuditLog:
    """The committed log, and the unit-of-work factory the use cases take.

    ``event_id`` is the event of the deliveries the tests hand to subscribers. Like the real database, a
    unit of work's appends are seen by itself at once, by others only after its commit, and
    dropped if it ends without one.
    """

    def __init__(self) -> None:
        self.committed: list[LoggedEntry] = []
        self.event_id: uuid.UUID = uuid.uuid4()
        self.opened: list[FakeAuditUnitOfWork] = []
        self.commits = 0
        self.before_commit: Callable[[], None] | None = None

    def __call__(self, *, write: bool = True, delivery: Delivery | None = None) -> FakeAuditUnitOfWork:
        if write and delivery is None:
            raise AssertionError("the log is written only for a delivery, which its inbox records")
        uow = FakeAuditUnitOfWork(self, write=write)
        self.opened.append(uow)
        return uow

    def entries(self) -> list[AuditEntry]:
        return [logged.entry for logged in self.committed]


class FakeEntries:
    def __init__(self, log: FakeAuditLog, *, write: bool) -> None:
        self._log = log
        self._write = write
        self.staged: list[AuditEntry] = []

    def append(self, entry: AuditEntry) -> None:
        if not self._write:
            raise AssertionError("appended through a read-only unit of work")
        self.staged.append(entry)

    def list(
        self,
        *,
        limit: int,
        before_position: int | None = None,
        event_type: str | None = None,
        entity_id: uuid.UUID | None = None,
    ) -> list[LoggedEntry]:
        start = len(self._log.committed) + 1
        visible = self._log.committed + [LoggedEntry(start + i, entry) for i, entry in enumerate(self.staged)]
        matching = [
            logged
            for logged in reversed(visible)
            if (before_position is None or logged.position < before_position)
            and (event_type is None or logged.entry.event_type == event_type)
            and (entity_id is None or logged.entry.entity_id == entity_id)
        ]
        return matching[:limit]


class FakeAuditUnitOfWork:
    def __init__(self, log: FakeAuditLog, *, write: bool) -> None:
        self._log = log
        self.write = write
        self.entries = FakeEntries(log, write=write)
        self._active = False

    def __enter__(self) -> Self:
        self._active = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._active = False
        self.entries.staged.clear()

    def commit(self) -> None:
        if not self._active or not self.write:
            raise AssertionError("commit outside the with-block or on a read-only unit of work")
        if self._log.before_commit is not None:
            self._log.before_commit()
        start = len(self._log.committed) + 1
        self._log.committed.extend(LoggedEntry(start + i, entry) for i, entry in enumerate(self.entries.staged))
        self.entries.staged.clear()
        self._log.commits += 1
