"""Which database failures a command reports as "a database did not answer": only those
reaching the database, never a refusal by one that answered (test_settings_errors runs them)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from infrastructure.db.failures import operator_message


def sqlite_error(sql: str, database: str = ":memory:") -> sqlite3.OperationalError:
    with pytest.raises(sqlite3.OperationalError) as raised:
        sqlite3.connect(database).execute(sql)
    return raised.value


def test_a_database_that_cannot_be_reached_did_not_answer() -> None:
    cannot_open = sqlite_error("SELECT 1", "/nonexistent-folder/shop.db")
    refused = psycopg.OperationalError("connection to server at 127.0.0.1, port 1 failed: Connection refused")
    for cause in (cannot_open, refused):
        message = operator_message(OperationalError("SELECT 1", {}, cause))
        assert message is not None and message.startswith("a database did not answer: "), message
    assert operator_message(OperationalError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)) == (
        "a database did not answer: gone"
    )


def test_a_missing_table_says_to_upgrade_on_either_database() -> None:
    missing = sqlite_error("SELECT * FROM user_users")
    undefined = psycopg.errors.UndefinedTable('relation "user.user_users" does not exist')
    for error in (OperationalError("SELECT", {}, missing), ProgrammingError("SELECT", {}, undefined)):
        message = operator_message(error)
        assert message is not None and message.endswith("run `shop db upgrade` first"), message


def test_a_locked_database_answered(tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "shop.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    with pytest.raises(sqlite3.OperationalError) as raised:
        sqlite3.connect(tmp_path / "shop.db", timeout=0).execute("SELECT 1 FROM sqlite_master")
    holder.close()
    locked = raised.value
    assert operator_message(OperationalError("INSERT", {}, locked)) == (
        "a database could not carry out the command: database is locked"
    )


def test_an_error_that_is_a_bug_keeps_its_traceback() -> None:
    assert operator_message(DBAPIError("SELECT", {}, psycopg.errors.SyntaxError("syntax error"))) is None
