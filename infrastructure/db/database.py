"""Each bounded context's database, on engines shared per database server, built at start-up.

Each context gets its own ``Database`` from its own URL, so no transaction can span two
contexts and any context can be pointed at a server of its own. Contexts whose URLs name the
same server (and database) share one engine, and so one connection pool, per process: owning
data is about schemas and transactions, not sockets, and a pool per context would multiply by
six the connections each process may hold open on the server.

On PostgreSQL each context also lives in a schema of its own. Its tables declare none;
SQLAlchemy's ``schema_translate_map`` writes the context's schema into every statement it
compiles (ORM, Core, DDL, Alembic's operations), so any pooled connection serves any context
with no ``SET search_path`` round trip per checkout. Hand-written SQL, which SQLAlchemy does not
compile, names tables unqualified only inside :meth:`Database.begin`.

SQLite keeps each context in a file of its own, with an engine of its own per file: a file has
one writer at a time, and its write turn (see :meth:`Database.session`) belongs to the file.
"""

from __future__ import annotations

import select
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000
# How often a writer tries BEGIN IMMEDIATE while another process writes (see _begin_immediate).
BEGIN_FIRST_PAUSE = 0.0001
BEGIN_LONGEST_PAUSE = 0.001
# ``postgresql://`` and ``postgres://`` mean psycopg 3, the one PostgreSQL driver installed.
_POSTGRESQL_DRIVERS = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}
SUPPORTED_DRIVERS = frozenset({"sqlite", "sqlite+pysqlite", "postgresql+psycopg"})


@dataclass(frozen=True)
class PoolOptions:
    """Connection pool and per-connection settings of a database server (SQLite ignores them).

    The pool is per server and process, shared by every context on the server.
    """

    size: int = 16  # DATABASE_POOL_SIZE's default (see the comment on it)
    max_overflow: int = 2  # DATABASE_MAX_OVERFLOW's default
    timeout_seconds: float = 30.0
    statement_timeout_ms: int = 30_000  # 0: statements may run forever
    connect_timeout_seconds: int = 5
    # What the server shows for the shop's connections (pg_stat_activity.application_name).
    application_name: str = "modular-shop"


class Server:
    """One database server's engine, shared by the contexts whose URLs name it."""

    def __init__(self, key: str, engine: Engine) -> None:
        self.key = key
        self.engine = engine
        self.users = 0
        # SQLite has one writer at a time; its busy handler makes waiting writers sleep and
        # poll, so under load some wait past the timeout while others keep getting in. The
        # threads of one process queue on this lock instead, and are handed the turn at once.
        self.writer_turn = threading.Lock() if engine.dialect.name == "sqlite" else None


class Engines:
    """The engines of one process: one per database server, whichever contexts use it.

    Servers are told apart by URL (a schema is not part of it). Each ``Database`` takes its
    server's engine when it is built and gives it back when disposed; the engine, and its
    pool, are disposed when the last context on it is, never under another context.
    """

    def __init__(self, pool: PoolOptions | None = None, **engine_options: Any) -> None:
        self._pool = pool or PoolOptions()
        self._engine_options = engine_options
        self._servers: dict[str, Server] = {}
        self._lock = threading.Lock()

    def acquire(self, url: URL) -> Server:
        key = url.render_as_string(hide_password=False)
        with self._lock:
            server = self._servers.get(key)
            if server is None:
                server = self._servers[key] = Server(key, _create_engine(url, self._pool, self._engine_options))
            server.users += 1
            return server

    def release(self, server: Server) -> None:
        with self._lock:
            server.users -= 1
            if server.users:
                return
            del self._servers[server.key]
        server.engine.dispose()


class Database:
    """One context's view of its server's engine, plus two session factories: readers, and
    writers that lock up front.

    On SQLite a deferred transaction that reads and then writes fails at once with
    ``database is locked`` when another writer got in between (WAL has no lock upgrade
    wait). Write transactions therefore begin ``IMMEDIATE``, queued on the process's writer
    turn and waiting for other processes' writers up to the busy timeout (see
    ``_begin_immediate``); read transactions stay deferred and run beside writers.

    ``engines`` are the process's shared engines; without them the database gets engines of
    its own, configured by ``pool`` and ``engine_options`` (tools and tests).
    """

    def __init__(
        self,
        name: str,
        url: str | URL,
        *,
        schema: str | None = None,
        engines: Engines | None = None,
        pool: PoolOptions | None = None,
        **engine_options: Any,
    ) -> None:
        if engines is None:
            engines = Engines(pool, **engine_options)
        elif pool is not None or engine_options:
            raise TypeError("a database on shared engines is configured by those engines")
        self.name = name
        self.url = _with_driver(make_url(url))
        self._engines = engines
        self._server: Server | None = engines.acquire(self.url)
        shared = self._server.engine
        # Only PostgreSQL has schemas here; SQLite keeps every context in a file of its own.
        self.schema: str | None = (schema or name) if shared.dialect.name == "postgresql" else None
        self.engine: Engine = (
            shared if self.schema is None else shared.execution_options(schema_translate_map={None: self.schema})
        )
        self._writer_engine = self.engine
        if shared.dialect.name == "sqlite":
            self._writer_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
            self._statement_engine = self.engine.execution_options(sqlite_begin=None)
        else:
            self._statement_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._readers = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._writers = sessionmaker(bind=self._writer_engine, expire_on_commit=False, class_=_WriterSession)
        self._writer_turn = self._server.writer_turn

    @property
    def serializes_writers(self) -> bool:
        """Whether its write transactions run one at a time (SQLite: one writer per file), so
        that several of them made one loses no concurrency."""
        return self._writer_turn is not None

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
    def autocommit(self) -> Iterator[Connection]:
        """A connection whose every statement runs alone, outside any transaction, committed
        as it ends: for a read that is one statement, or a write that is one atomic statement
        (an effect and its delivery's inbox row, :meth:`Inbox.record_with`), where BEGIN and
        COMMIT would be two more round trips. Statements that must agree or commit together
        use :meth:`session` or :meth:`begin` instead.

        On SQLite a write here takes no write turn (:meth:`session`): it waits for the file's
        lock within the busy timeout instead. The units of work write here on PostgreSQL only.
        """
        with self._statement_engine.connect() as connection:
            yield connection

    def reading(self) -> AbstractContextManager[Connection]:
        """A connection for reads that are one statement each, outside any transaction
        (:meth:`autocommit`).

        A single statement sees a consistent snapshot by itself, so the BEGIN and ROLLBACK
        around it would be two round trips (and, on SQLite, a read lock) that buy nothing.
        Reads that must agree across several statements use :meth:`session` instead.
        """
        return self.autocommit()

    @contextmanager
    def begin(self, *, write: bool = False) -> Iterator[Connection]:
        """A connection in a transaction, committed when the block ends (rolled back if it
        raises), where hand-written SQL may name the context's tables unqualified: migrations,
        operators' tools and tests.

        On PostgreSQL the transaction's ``search_path`` names the context's schema. That costs a
        round trip, which is why the application's own statements, compiled by SQLAlchemy, carry
        their schema instead; and ``SET LOCAL`` ends with the transaction, so the pooled
        connection goes back to the other contexts as it came.
        """
        with (self._writer_engine if write else self.engine).begin() as connection:
            if self.schema is not None:
                connection.exec_driver_sql(f"SET LOCAL search_path TO {quoted_schema(connection.engine, self.schema)}")
            yield connection

    def ping(self) -> None:
        """Raise if the database does not answer a trivial query."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Give the server's engine back; its pool closes once no other context uses it."""
        server, self._server = self._server, None
        if server is not None:
            self._engines.release(server)

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


def database_url(value: str) -> URL:
    """``value`` as the URL the shop connects with (``postgresql://`` means psycopg 3); a
    ``ValueError`` saying what is wrong, without quoting the URL (it may hold a password),
    unless it names SQLite or PostgreSQL through a driver that is installed."""
    try:
        url = _with_driver(make_url(value))
    except ArgumentError as error:
        raise ValueError("not a URL like postgresql://user:password@host:5432/shop or sqlite:///path") from error
    if url.drivername not in SUPPORTED_DRIVERS:
        raise ValueError(f"unsupported database or driver {url.drivername!r}: use postgresql:// or sqlite:///path")
    return url


def _with_driver(url: URL) -> URL:
    driver = _POSTGRESQL_DRIVERS.get(url.drivername)
    return url.set(drivername=driver) if driver else url


def _create_engine(url: URL, pool: PoolOptions, engine_options: dict[str, Any]) -> Engine:
    if url.get_backend_name() == "sqlite":
        _ensure_sqlite_folder(url)
        engine = create_engine(url, **engine_options)
        _configure_sqlite(engine)
        return engine
    engine = create_engine(
        url,
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.timeout_seconds,
        connect_args={"connect_timeout": pool.connect_timeout_seconds, "application_name": pool.application_name},
        **engine_options,
    )
    if engine.dialect.name == "postgresql":
        _configure_postgresql(engine, pool.statement_timeout_ms)
    return engine


def _configure_postgresql(engine: Engine, statement_timeout_ms: int) -> None:
    # Inserted first, so the session setting holds before anything else uses the connection.
    @event.listens_for(engine, "connect", insert=True)
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Outside a transaction: a later rollback must not undo the session setting.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET SESSION statement_timeout = {int(statement_timeout_ms)}")
        dbapi_connection.autocommit = autocommit

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        """Replace a pooled connection the server closed while it sat idle, before it is used.

        A server that stops or restarts (or ends a session: ``pg_terminate_backend``,
        ``idle_session_timeout``) sends each connection a last error and closes it. An idle
        pooled connection has no query in flight and the shop listens for no notifications,
        so input waiting on its socket means exactly that; polling the socket without waiting
        tells it in this process, where ``pool_pre_ping`` would spend a round trip on every
        checkout. ``DisconnectionError`` raised here is SQLAlchemy's documented way to have the
        pool connect afresh and retry the checkout. A connection lost while in use is the
        optimistic case: its statement fails (503), the dialect recognises the disconnect and
        SQLAlchemy invalidates the whole pool, so the next checkouts connect afresh too.
        """
        if dbapi_connection.closed or _has_input(dbapi_connection.fileno()):
            raise DisconnectionError("the server closed this pooled connection while it was idle")


def _has_input(socket_fd: int) -> bool:
    """Whether ``socket_fd`` can be read (data, end of stream or an error) without waiting."""
    if not hasattr(select, "poll"):  # Windows: no poll; its select takes any socket
        return bool(select.select([socket_fd], [], [], 0)[0])
    poller = select.poll()  # not select(): worker processes may hold descriptors past 1024
    poller.register(socket_fd, select.POLLIN)
    return bool(poller.poll(0))


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
        if mode == "IMMEDIATE":
            _begin_immediate(connection)
        elif mode is not None:
            connection.exec_driver_sql(f"BEGIN {mode}")


def _begin_immediate(connection: Connection) -> None:
    """``BEGIN IMMEDIATE``, waiting for another process's writer by trying again every
    ``BEGIN_PAUSES`` rather than through SQLite's busy handler.

    The threads of one process queue on its writer turn (:class:`Server`); only the other
    processes' writers are waited for here. SQLite's busy handler sleeps 1, 2, 5, 10, 15 … up to
    100 ms between its tries, so a waiter oversleeps a transaction of a few milliseconds many
    times over, and meanwhile the other process hands the file from one of its writers to the
    next: under load its writers get the file, this one's wait (its requests and deliveries
    queued behind it). Trying every millisecond at most, the waiter gets in at the next gap.
    The busy timeout stays what it was for everything else (reads, commits) and as the bound
    of this wait. The tries go straight to the driver; the last one, after the busy timeout or
    any other error, goes through SQLAlchemy, so that its failure is raised and handled as
    any statement's."""
    raw = connection.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    raw.execute("PRAGMA busy_timeout=0")
    try:
        _try_begin_immediate(connection, raw)
    except BaseException:
        _restore_busy_timeout(connection, raw)
        raise
    raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def _try_begin_immediate(connection: Connection, raw: sqlite3.Connection) -> None:
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    for pause in _begin_pauses():
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            # The extended code (SQLITE_BUSY_RECOVERY, ...) carries the primary one in its low byte.
            busy = (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                break
        time.sleep(pause)
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _restore_busy_timeout(connection: Connection, raw: sqlite3.Connection) -> None:
    """After a failed begin: the busy timeout back, or the connection out of the pool (with a
    timeout of 0, its every later statement would fail at once under contention). The begin's
    own error stays the one raised."""
    try:
        raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    except sqlite3.Error:
        connection.invalidate()


def _begin_pauses() -> Iterator[float]:
    """0.1 ms, doubling up to ``BEGIN_LONGEST_PAUSE``, then that for ever."""
    pause = BEGIN_FIRST_PAUSE
    while True:
        yield pause
        pause = min(pause * 2, BEGIN_LONGEST_PAUSE)
