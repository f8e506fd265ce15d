"""What a piece of code costs the database in round trips, on SQLite or PostgreSQL.

On PostgreSQL every statement, BEGIN, COMMIT and ROLLBACK is a round trip to the server and a
pass through SQLAlchemy and psycopg; the deliveries of every order run a handful each, so tests
pin how many. Counted as ``bench/profile_requests.py statements`` counts them: statements as
the driver receives them (the shop's own ``BEGIN …`` on SQLite left out), and transactions
begun, except on connections that run each statement on its own (``Database.reading``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, event


@dataclass
class RoundTrips:
    statements: list[str] = field(default_factory=list)
    transactions: int = 0  # begun; each is a BEGIN and a COMMIT or ROLLBACK more
    alone: int = 0  # statements run outside any transaction

    def kinds(self) -> list[str]:
        """The statements' first words: ``["SELECT", "INSERT", …]``."""
        return [sql.split(None, 1)[0].upper() for sql in self.statements]


def _outside_transactions(connection: Connection) -> bool:
    options = connection.get_execution_options()
    return options.get("isolation_level") == "AUTOCOMMIT" or ("sqlite_begin" in options and not options["sqlite_begin"])


@contextmanager
def counted() -> Iterator[RoundTrips]:
    """The statements and transactions run inside the block, on any engine of this process."""
    seen = RoundTrips()

    def statement(_connection: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if not sql.lstrip().upper().startswith("BEGIN"):
            seen.statements.append(sql.strip())

    def begin(connection: Connection) -> None:
        if _outside_transactions(connection):
            seen.alone += 1
        else:
            seen.transactions += 1

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "begin", begin)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
        event.remove(Engine, "begin", begin)
