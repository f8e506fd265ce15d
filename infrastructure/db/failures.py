"""What a database failure tells the operator: a server that did not answer, or tables not made
yet, are theirs to fix; SQLAlchemy's stack would only hide that. The CLI says it in one line
(:func:`operator_message`), the HTTP API in its 503 problem (:func:`missing_table`).

Only a failure to reach the database is "did not answer": a missing table (the command or
request ran before ``shop db upgrade``) or a locked SQLite file said that way would send the
operator looking at a server that is fine.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Collection
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

# PostgreSQL's class 08 (connection exception), and a server shutting down or starting up.
_UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03")
# How each database names a unique violation: PostgreSQL's SQLSTATE, SQLite's extended codes.
_UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE = frozenset({sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE})


def operator_message(error: BaseException) -> str | None:
    """One line saying what failed and what to do; None for an error that is a bug, not the
    operator's to fix (its traceback is what helps), or not a database's at all."""
    if not isinstance(error, DBAPIError):
        return None
    # The driver's own message names the server and what failed, never the password.
    reason = str(error.orig or error).strip().splitlines()[0]
    if missing_table(error):
        return f"the databases are not set up ({reason}): run `shop db upgrade` first"
    if error.connection_invalidated or _unreachable(error.orig):
        return f"a database did not answer: {reason}"
    if isinstance(error, OperationalError):
        return f"a database could not carry out the command: {reason}"
    return None


def _psycopg() -> Any:
    """psycopg if a PostgreSQL database was used (only then can an error be one of its); not
    imported otherwise, which would cost a SQLite shop's every command half a second."""
    return sys.modules.get("psycopg")


def missing_table(error: DBAPIError) -> bool:
    """Whether ``error`` says a table does not exist: the database was not migrated."""
    cause = error.orig
    psycopg = _psycopg()
    if psycopg is not None and isinstance(cause, psycopg.errors.UndefinedTable):
        return True
    return isinstance(cause, sqlite3.OperationalError) and str(cause).startswith("no such table")


def unique_violation_on(error: IntegrityError, tables: Collection[str]) -> bool:
    """Whether ``error`` is a key of one of ``tables`` refusing a row already there: a row
    stored before, by a repeat of the same work. Any other refusal (a NOT NULL, a check, a
    foreign key, another table's key) is a failure, never a sign that the work was done."""
    cause = error.orig
    if isinstance(cause, sqlite3.IntegrityError):
        return cause.sqlite_errorcode in _SQLITE_UNIQUE and any(f" {table}." in str(cause) for table in tables)
    table = getattr(getattr(cause, "diag", None), "table_name", None)
    return getattr(cause, "sqlstate", None) == _UNIQUE_VIOLATION and table in tables


def _unreachable(cause: BaseException | None) -> bool:
    psycopg = _psycopg()
    if psycopg is not None and isinstance(cause, psycopg.OperationalError):
        # No state at all: the connection could not be made or was lost on the way.
        return cause.sqlstate is None or cause.sqlstate.startswith(_UNREACHABLE_STATES)
    # sqlite_errorname is set on errors the sqlite3 module raises itself.
    return getattr(cause, "sqlite_errorname", None) == "SQLITE_CANTOPEN"
