"""One bounded context's database: its engine and session factories, built once at start-up.

Each context gets its own ``Database`` from its own URL, so no transaction can span two
contexts and any context can be pointed at a server of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000


class Database:
    """Engine plus two session factories: readers, and writers that lock up front.

    On SQLite a deferred transaction that reads and then writes fails at once with
    ``database is locked`` when another writer got in between (WAL has no lock upgrade
    wait). Write transactions therefore begin ``IMMEDIATE`` and queue on the busy timeout;
    read transactions stay deferred and run beside writers.
    """

    def __init__(self, name: str, url: str | URL, **engine_options: Any) -> None:
        self.name = name
        self.url = make_url(url)
        if self.url.get_backend_name() == "sqlite":
            _ensure_sqlite_folder(self.url)
        self.engine: Engine = create_engine(self.url, **engine_options)
        self._writer_engine = self.engine
        if self.engine.dialect.name == "sqlite":
            _configure_sqlite(self.engine)
            self._writer_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._readers = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._writers = sessionmaker(bind=self._writer_engine, expire_on_commit=False)

    def session(self, *, write: bool) -> Session:
        return (self._writers if write else self._readers)()

    def connect(self, *, write: bool) -> Connection:
        return (self._writer_engine if write else self.engine).connect()

    def ping(self) -> None:
        """Raise if the database does not answer a trivial query."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.name!r}, {self.url.render_as_string(hide_password=True)!r})"


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
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")
