"""A SQLite writer waiting for another process's write transaction tries again often
(``_begin_immediate`` in ``infrastructure/db.py``) instead of sleeping in SQLite's busy handler,
and still gives up after the busy timeout.

The other process is a plain ``sqlite3`` connection holding ``BEGIN IMMEDIATE``: SQLite's file
locks do not tell a connection in this process from one in another.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from infrastructure import db
from infrastructure.db import Database


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
    database = Database("context", f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        with database.begin(write=True) as connection:
            connection.execute(text("CREATE TABLE things (id INTEGER PRIMARY KEY)"))
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(OperationalError, match="database is locked"), database.begin(write=True) as connection:
            connection.execute(text("INSERT INTO things (id) VALUES (1)"))
        other.execute("ROLLBACK")
        with database.begin(write=True) as connection:  # the connection is fine afterwards
            connection.execute(text("INSERT INTO things (id) VALUES (1)"))
    finally:
        other.close()
        database.dispose()
