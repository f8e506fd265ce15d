"""A SQLite writer waiting for another process's write transaction tries again often
(``_begin_immediate`` in ``infrastructure/db/database.py``) instead of sleeping in SQLite's busy handler,
and still gives up after the busy timeout.

The other process is a plain ``sqlite3`` connection holding ``BEGIN IMMEDIATE``: SQLite's file
locks do not tell a connection in this process from one in another.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

from infrastructure.db import database as db
from infrastructure.db.database import Database


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[Database, sqlite3.Connection]]:
    """The shop's database on a file, and another writer's connection to the same file."""
    path = tmp_path / "context.db"
    database = Database("context", f"sqlite:///{path}")
    with database.begin(write=True) as connection:
        connection.execute(text("CREATE TABLE things (id INTEGER PRIMARY KEY)"))
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        yield database, other
    finally:
        other.close()
        database.dispose()


def test_a_writer_tries_again_every_millisecond_at_most_while_another_process_writes(
    files: tuple[Database, sqlite3.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    database, other = files
    other.execute("BEGIN IMMEDIATE")
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        # SQLite's own busy handler would sleep in C, never here: the other writer would
        # then never commit, and the write below would fail after the busy timeout.
        pauses.append(seconds)
        if len(pauses) == 5:
            other.execute("COMMIT")

    monkeypatch.setattr(time, "sleep", pause)
    with database.begin(write=True) as connection:
        connection.execute(text("INSERT INTO things (id) VALUES (1)"))
        busy_timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()

    assert pauses == [0.0001, 0.0002, 0.0004, 0.0008, 0.001]
    assert busy_timeout == db.SQLITE_BUSY_TIMEOUT_MS, "the busy timeout is back for the transaction's statements"
    assert other.execute("SELECT id FROM things").fetchall() == [(1,)]


def test_a_writer_still_gives_up_after_the_busy_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "context.db"
    # One connection for everything: the one whose begin failed is the one read afterwards.
    database = Database("context", f"sqlite:///{path}", poolclass=StaticPool)
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with database.begin(write=True) as connection:
            connection.execute(text("CREATE TABLE things (id INTEGER PRIMARY KEY)"))
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="database is locked"), database.begin(write=True) as connection:
            connection.execute(text("INSERT INTO things (id) VALUES (1)"))
        with database.reading() as connection:
            busy_timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert busy_timeout == 50, "the failed begin gave its connection its busy timeout back"
        other.execute("ROLLBACK")
        with database.begin(write=True) as connection:
            connection.execute(text("INSERT INTO things (id) VALUES (1)"))
    finally:
        other.close()
        database.dispose()


def test_a_begin_refused_with_an_extended_busy_code_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite may refuse with an extended code (``SQLITE_BUSY_RECOVERY``: another connection
    is recovering the WAL); it still means busy, to wait for like the plain one."""
    refusals = [sqlite3.SQLITE_BUSY_RECOVERY, sqlite3.SQLITE_BUSY_RECOVERY]

    class Recovering(sqlite3.Connection):
        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            if sql == "BEGIN IMMEDIATE" and refusals:
                error = sqlite3.OperationalError("database is locked")
                error.sqlite_errorcode = refusals.pop(0)
                raise error
            return super().execute(sql, parameters)

    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    database = Database("context", f"sqlite:///{tmp_path / 'context.db'}", connect_args={"factory": Recovering})
    try:
        with database.begin(write=True) as connection:
            connection.execute(text("CREATE TABLE things (id INTEGER PRIMARY KEY)"))
    finally:
        database.dispose()

    assert pauses == [0.0001, 0.0002], "tried again after each refusal, not handed to SQLAlchemy's one try"
    assert not refusals


def test_a_connection_whose_busy_timeout_cannot_be_restored_leaves_the_pool(
    files: tuple[Database, sqlite3.Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept with a busy timeout of 0, the connection would fail its later statements at once
    whenever another process writes."""
    database, other = files
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 50)
    broken = False

    class Unrestorable(sqlite3.Connection):
        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            if broken and sql == "PRAGMA busy_timeout=50":
                raise sqlite3.OperationalError("disk I/O error")
            return super().execute(sql, parameters)

    database.dispose()
    database = Database("context", database.url, connect_args={"factory": Unrestorable})
    try:
        other.execute("BEGIN IMMEDIATE")
        broken = True
        with database.connect(write=True) as connection:
            failed = connection.connection.driver_connection
            with pytest.raises(OperationalError, match="database is locked"):
                connection.begin()  # the begin's own error, not the restore's
        assert isinstance(failed, Unrestorable)
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            failed.execute("SELECT 1")
        other.execute("ROLLBACK")
        broken = False
        with database.begin(write=True) as connection:
            assert connection.connection.driver_connection is not failed
            connection.execute(text("INSERT INTO things (id) VALUES (1)"))
    finally:
        database.dispose()
