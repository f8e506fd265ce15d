"""The query plans of what the application really sends, on SQLite or PostgreSQL.

Tests assert that a query meant to stay fast as data grows can use its index as a range (or
its search index) instead of walking the table: the time only shows with a million rows, the
plan already with a handful. The statements are captured as the driver receives them, while
the application code runs, so the plan is the plan of that code's SQL and parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from sqlalchemy import Engine, event

Statement = tuple[str, Any]


@contextmanager
def captured_selects(engine: Engine) -> Iterator[list[Statement]]:
    """The ``SELECT`` statements sent through ``engine`` inside the block, with their parameters."""
    statements: list[Statement] = []

    def record(_connection: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        if sql.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((sql, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def plan(engine: Engine, statement: Statement, *, planner: dict[str, str] | None = None) -> str:
    """The plan of one captured statement: SQLite's ``EXPLAIN QUERY PLAN`` details, one per line
    and indented by depth, or PostgreSQL's ``EXPLAIN`` text. ``planner`` sets PostgreSQL planner
    settings for this plan only (e.g. ``{"enable_seqscan": "off"}``: on a table of a few rows a
    sequential scan is cheapest, and the question is whether the index *can* serve the query)."""
    sql, parameters = statement
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters).all()
            depth: dict[int, int] = {0: -1}
            lines = []
            for node, parent, _, detail in rows:
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + str(detail))
            return "\n".join(lines)
        with connection.begin():
            for name, value in (planner or {}).items():
                connection.exec_driver_sql(f"SET LOCAL {name} = {value}")
            return "\n".join(str(row[0]) for row in connection.exec_driver_sql(f"EXPLAIN {sql}", parameters))


class Planned(NamedTuple):
    sql: str
    plan: str


def plans_of(engine: Engine, action: Callable[[], object], *, planner: dict[str, str] | None = None) -> list[Planned]:
    """Run ``action``; every ``SELECT`` it sent through ``engine``, with its plan."""
    with captured_selects(engine) as statements:
        action()
    return [Planned(statement[0], plan(engine, statement, planner=planner)) for statement in statements]
