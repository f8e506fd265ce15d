"""What every context's fakes are made of: tables, staged changes, stores and units of work."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Generic, Self, TypeVar

K = TypeVar("K")
V = TypeVar("V")
A = TypeVar("A")


class CommitFailed(Exception):
    """What a test's ``before_commit`` hook raises to make a commit fail."""


def detached(aggregate: A) -> A:
    """A copy without pending events: what a repository stores, and what a load returns."""
    return dataclasses.replace(aggregate, events=[])  # type: ignore[type-var]


class Table(Generic[K, V]):
    """The committed rows of one kind, by key."""

    def __init__(self) -> None:
        self.rows: dict[K, V] = {}


class Staged(Generic[K, V]):
    """One transaction's view of a table: its own changes over the committed rows."""

    def __init__(self, table: Table[K, V], *, writable: bool) -> None:
        self._table = table
        self._writable = writable
        self._changes: dict[K, V | None] = {}  # None marks a deleted row

    def get(self, key: K) -> V | None:
        if key in self._changes:
            return self._changes[key]
        return self._table.rows.get(key)

    def values(self) -> list[V]:
        merged: dict[K, V | None] = {**self._table.rows, **self._changes}
        return [value for value in merged.values() if value is not None]

    def put(self, key: K, value: V) -> None:
        self._check_writable()
        self._changes[key] = value

    def delete(self, key: K) -> None:
        self._check_writable()
        self._changes[key] = None

    def apply(self) -> None:
        for key, value in self._changes.items():
            if value is None:
                self._table.rows.pop(key, None)
            else:
                self._table.rows[key] = value
        self._changes.clear()

    def discard(self) -> None:
        self._changes.clear()

    def _check_writable(self) -> None:
        if not self._writable:
            raise AssertionError("a read-only unit of work (write=False) was asked to write")


class RecordingPublisher:
    """Remembers what was published; ``listeners`` run at publish time (to check what is visible then)."""

    def __init__(self) -> None:
        self.published: list[Any] = []
        self.listeners: list[Callable[[Sequence[Any]], None]] = []

    def publish(self, events: Sequence[Any]) -> None:
        self.published.extend(events)
        for listener in self.listeners:
            listener(events)

    def of_type(self, event_type: type[A]) -> list[A]:
        return [event for event in self.published if isinstance(event, event_type)]


class Store:
    def __init__(self) -> None:
        self.publisher = RecordingPublisher()
        self.before_commit: Callable[[Any], None] | None = None
        # Runs once a commit has stored its changes: raising there is an answer lost after the commit.
        self.after_commit: Callable[[Any], None] | None = None
        # Runs as each unit of work begins: raising there is a database that cannot be reached.
        self.on_begin: Callable[[Any], None] | None = None
        self.commits = 0


class FakeUnitOfWork:
    def __init__(self, store: Store, *, write: bool) -> None:
        self._base_store = store
        self.write = write
        self.seen: list[Any] = []
        self._staged: list[Staged[Any, Any]] = []
        self._active = False

    def __enter__(self) -> Self:
        if self._active:
            raise AssertionError("a unit of work was entered twice")
        if self._base_store.on_begin is not None:
            self._base_store.on_begin(self)
        self.seen = []
        self._staged = []
        self._active = True
        self._open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for staged in self._staged:
            staged.discard()
        self._active = False

    def _open(self) -> None:
        raise NotImplementedError

    def _stage(self, table: Table[K, V]) -> Staged[K, V]:
        staged = Staged(table, writable=self.write)
        self._staged.append(staged)
        return staged

    def commit(self) -> None:
        if not self._active:
            raise AssertionError("commit outside the unit of work's with-block")
        if not self.write:
            raise AssertionError("a read-only unit of work (write=False) was committed")
        if self._base_store.before_commit is not None:
            self._base_store.before_commit(self)
        for staged in self._staged:
            staged.apply()
        self._base_store.commits += 1
        events = [event for aggregate in self.seen for event in aggregate.events]
        for aggregate in self.seen:
            aggregate.events.clear()
        self._base_store.publisher.publish(events)
        if self._base_store.after_commit is not None:
            self._base_store.after_commit(self)
