"""One bounded context's database: its engine and session factories, built once at start-up.

Each context gets its own ``Database`` from its own URL, so no transaction can span two
contexts and any context can be pointed at a server of its own. On PostgreSQL each context
also lives in a schema of its own (its tables declare none: every connection's ``search_path``
names the context's schema), so contexts sharing one server or one database never meet.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000
# ``postgresql://`` and ``postgres://`` mean psycopg 3, the one PostgreSQL driver installed.
_POSTGRESQL_DRIVERS = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}


@dataclass(frozen=True)
class PoolOptions:
    """Connection pool and per-statement limits of a server database (SQLite ignores them)."""

    size: int = 5
    max_overflow: int = 10
    timeout_seconds: float = 30.0
    statement_timeout_ms: int = 30_000  # 0: statements may run forever
    connect_timeout_seconds: int = 5


class Database:
    """Engine plus two session factories: readers, and writers that lock up front.

    On SQLite a deferred transaction that reads and then writes fails at once with
    ``database is locked`` when another writer got in between (WAL has no lock upgrade
    wait). Write transactions therefore begin ``IMMEDIATE`` and queue on the busy timeout;
    read transactions stay deferred and run beside writers.
    """

    def __init__(
        self,
        name: str,
        url: str | URL,
        *,
        schema: str | None = None,
        pool: PoolOptions | None = None,
        **engine_options: Any,
    ) -> None:
        self.name = name
        self.url = _with_driver(make_url(url))
        # Only PostgreSQL has schemas here; SQLite keeps every context in a file of its own.
        self.schema: str | None = None
        if self.url.get_backend_name() == "sqlite":
            _ensure_sqlite_folder(self.url)
            self.engine: Engine = create_engine(self.url, **engine_options)
        else:
            pool = pool or PoolOptions()
            self.engine = create_engine(
                self.url,
                pool_size=pool.size,
                max_overflow=pool.max_overflow,
                pool_timeout=pool.timeout_seconds,
                # A server that restarted left the pool's connections dead: test each one as it
                # is checked out, so the first requests after an outage succeed instead of failing.
                pool_pre_ping=True,
                connect_args={"connect_timeout": pool.connect_timeout_seconds},
                **engine_options,
            )
            if self.engine.dialect.name == "postgresql":
                self.schema = schema or name
                _configure_postgresql(self.engine, self.schema, pool.statement_timeout_ms)
        self._writer_engine = self.engine
        if self.engine.dialect.name == "sqlite":
            _configure_sqlite(self.engine)
            self._writer_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
            self._statement_engine = self.engine.execution_options(sqlite_begin=None)
        else:
            self._statement_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._readers = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._writers = sessionmaker(bind=self._writer_engine, expire_on_commit=False, class_=_WriterSession)
        # SQLite has one writer at a time; its busy handler makes waiting writers sleep and
        # poll, so under load some wait past the timeout while others keep getting in. The
        # threads of one process queue on this lock instead, and are handed the turn at once.
        self._writer_turn = threading.Lock() if self.engine.dialect.name == "sqlite" else None

    def session(self, *, write: bool) -> Session:
        """A session; close it (``with`` or ``close()``) to end its write turn on SQLite."""
        if not write:
            return self._readers()
        session = self._writers()
        if self._writer_turn is not None:
            if not self._writer_turn.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
                raise OperationalError(
                    "BEGIN IMMEDIATE", None, TimeoutError(f"no write turn on {self.name} within the busy timeout")
                )
            session.writer_turn = self._writer_turn
        return session

    def connect(self, *, write: bool) -> Connection:
        return (self._writer_engine if write else self.engine).connect()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads that are one statement each, outside any transaction.

        A single statement sees a consistent snapshot by itself, so the BEGIN and ROLLBACK
        around it would be two round trips (and, on SQLite, a read lock) that buy nothing.
        Reads that must agree across several statements use :meth:`session` instead.
        """
        with self._statement_engine.connect() as connection:
            yield connection

    def ping(self) -> None:
        """Raise if the database does not answer a trivial query."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.name!r}, {self.url.render_as_string(hide_password=True)!r})"


class _WriterSession(Session):
    """Gives the process's SQLite write turn back when closed (see ``Database.session``)."""

    writer_turn: threading.Lock | None = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            turn, self.writer_turn = self.writer_turn, None
            if turn is not None:
                turn.release()


def quoted_schema(engine: Engine, schema: str) -> str:
    """``schema`` as an SQL identifier, always quoted: ``user`` and ``order`` are reserved words."""
    return engine.dialect.identifier_preparer.quote_identifier(schema)


def create_schema(connection: Connection, schema: str | None) -> None:
    """Create the context's schema if it is missing (PostgreSQL; a no-op elsewhere)."""
    if schema is not None:
        connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted_schema(connection.engine, schema)}")


def _with_driver(url: URL) -> URL:
    driver = _POSTGRESQL_DRIVERS.get(url.drivername)
    return url.set(drivername=driver) if driver else url


def _configure_postgresql(engine: Engine, schema: str, statement_timeout_ms: int) -> None:
    search_path = quoted_schema(engine, schema)

    # Inserted first, so the session settings hold before anything else uses the connection.
    @event.listens_for(engine, "connect", insert=True)
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Outside a transaction: a later rollback must not undo the session settings.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET SESSION search_path TO {search_path}")
            cursor.execute(f"SET SESSION statement_timeout = {int(statement_timeout_ms)}")
        dbapi_connection.autocommit = autocommit


def _ensure_sqlite_folder(url: URL) -> None:
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # ``sqlite_begin=None``: statements run on their own (see ``Database.reading``).
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode is not None:
            connection.exec_driver_sql(f"BEGIN {mode}")
