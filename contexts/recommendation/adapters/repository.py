"""Profiles and purchase counts stored with SQLAlchemy.

Every count is added by an upsert, ``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``,
which the database applies atomically per row: on SQLite writers are serialised anyway, and on
PostgreSQL two transactions counting the same pair queue on the row instead of one overwriting
the other. Rows are written in key order so concurrent transactions lock them in one order.
A cancelled order is subtracted the same way, ``SET n = n - 1``, and rows counting nothing are
deleted, so that a product nobody bought any more is not "bought" by anyone.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from contexts.recommendation.adapters.orm import (
    CountedOrderLineRow,
    CountedOrderRow,
    PairRow,
    PopularityRow,
    ProfileRow,
    PurchaseRow,
)
from contexts.recommendation.domain import model

PROFILES: Table = ProfileRow.__table__  # type: ignore[assignment]
PURCHASES: Table = PurchaseRow.__table__  # type: ignore[assignment]
POPULARITY: Table = PopularityRow.__table__  # type: ignore[assignment]
PAIRS: Table = PairRow.__table__  # type: ignore[assignment]
ORDERS: Table = CountedOrderRow.__table__  # type: ignore[assignment]
ORDER_LINES: Table = CountedOrderLineRow.__table__  # type: ignore[assignment]


def _insert(dialect: str, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that can say ON CONFLICT, in the given SQL dialect."""
    if dialect == "sqlite":
        return sqlite.insert(table)
    if dialect == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"no upsert for the {dialect} dialect")


def counting_upsert(dialect: str, table: Table, counters: Sequence[str]) -> sqlite.Insert | postgresql.Insert:
    """INSERT rows into ``table``, or, where its primary key exists, add their ``counters`` to it."""
    statement = _insert(dialect, table)
    return statement.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={name: table.c[name] + statement.excluded[name] for name in counters},
    )


def _counted_rows(
    user_id: uuid.UUID, basket: model.Basket
) -> list[tuple[Table, list[dict[str, Any]], tuple[str, ...]]]:
    """What one order adds to the counts, and a cancelled one takes off again: rows of each table
    with the counters they change. None empty; PostgreSQL lets one upsert touch a row once, and a
    basket's products and pairs are distinct."""
    products = basket.products
    counted: list[tuple[Table, list[dict[str, Any]], tuple[str, ...]]] = [
        (
            PURCHASES,
            [{"user_id": user_id, "product_id": p, "units": basket.units[p], "orders": 1} for p in products],
            ("units", "orders"),
        ),
        (POPULARITY, [{"product_id": p, "orders": 1} for p in products], ("orders",)),
        (PAIRS, [{"product_id": p, "other_product_id": other, "count": 1} for p, other in basket.pairs], ("count",)),
    ]
    return [(table, rows, counters) for table, rows, counters in counted if rows]


@functools.cache
def _prebuilt_upsert(dialect: str, table: Table, counters: tuple[str, ...]) -> sqlite.Insert | postgresql.Insert:
    """:func:`counting_upsert`, built once per dialect and table: every order's delivery runs
    three of them, and building one (and its cache key) costs as much as running it."""
    return counting_upsert(dialect, table, counters)


@functools.cache
def _create_profile(dialect: str) -> sqlite.Insert | postgresql.Insert:
    """A profile's INSERT that leaves an existing one alone, built once per dialect."""
    return _insert(dialect, PROFILES).on_conflict_do_nothing(index_elements=[PROFILES.c.user_id])


@functools.cache
def _remember_order(dialect: str) -> ReturningInsert[Any]:
    """A counted order's INSERT that leaves a known one alone and says whether it was new,
    built once per dialect: every order's delivery runs it."""
    statement = _insert(dialect, ORDERS).on_conflict_do_nothing(index_elements=[ORDERS.c.order_id])
    return statement.returning(ORDERS.c.order_id)


_INSERT_ORDER_LINES = ORDER_LINES.insert()


class SqlAlchemyProfileRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def create(self, user_id: uuid.UUID, *, now: datetime) -> None:
        statement = _create_profile(self._session.get_bind().dialect.name)
        self._session.connection().execute(statement, {"user_id": user_id, "created_at": now})

    def record(self, order_id: uuid.UUID, user_id: uuid.UUID, basket: model.Basket) -> None:
        products = basket.products
        if not products or not self._remember(order_id, user_id, cancelled=False):
            return
        self._session.connection().execute(
            _INSERT_ORDER_LINES, [{"order_id": order_id, "product_id": p, "units": basket.units[p]} for p in products]
        )
        for table, rows, counters in _counted_rows(user_id, basket):
            self._add(table, rows, counters=counters)

    def cancel(self, order_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Subtract what the order counted, once; or note it cancelled, so that it never counts.

        On PostgreSQL the UPDATE does not see an order another transaction is still recording;
        noting it then waits for that transaction and, once it commits, finds the order there.
        The UPDATE is therefore tried once more: a fresh statement sees the committed order.
        """
        counted = (
            update(ORDERS)
            .where(ORDERS.c.order_id == order_id, ORDERS.c.cancelled.is_(False))
            .values(cancelled=True)
            .returning(ORDERS.c.order_id)
        )
        if self._session.execute(counted).first() is None:
            if self._remember(order_id, user_id, cancelled=True):
                return
            if self._session.execute(counted).first() is None:
                return
        lines = select(ORDER_LINES.c.product_id, ORDER_LINES.c.units).where(ORDER_LINES.c.order_id == order_id)
        basket = model.Basket.of((product_id, units) for product_id, units in self._session.execute(lines))
        self._session.execute(delete(ORDER_LINES).where(ORDER_LINES.c.order_id == order_id))
        for table, rows, counters in _counted_rows(user_id, basket):
            self._subtract(table, rows, counters=counters)

    def _remember(self, order_id: uuid.UUID, user_id: uuid.UUID, *, cancelled: bool) -> bool:
        """Note the order; False if it was known already."""
        statement = _remember_order(self._session.get_bind().dialect.name)
        parameters = {"order_id": order_id, "user_id": user_id, "cancelled": cancelled}
        return self._session.connection().execute(statement, parameters).first() is not None

    def _subtract(self, table: Table, rows: Sequence[dict[str, Any]], *, counters: Sequence[str]) -> None:
        """Take ``rows``' counters off the rows with their keys, then drop the rows left counting
        nothing (the last counter says in how many orders a row counts)."""
        keys = [column.name for column in table.primary_key.columns]
        matching = and_(*(table.c[key] == bindparam(f"key_{key}") for key in keys))
        decrement = {name: table.c[name] - bindparam(f"minus_{name}") for name in counters}
        params = [
            {**{f"key_{key}": row[key] for key in keys}, **{f"minus_{name}": row[name] for name in counters}}
            for row in rows
        ]
        connection = self._session.connection()
        connection.execute(update(table).where(matching).values(decrement), params)
        connection.execute(delete(table).where(matching, table.c[counters[-1]] <= 0), params)

    def _add(self, table: Table, rows: Sequence[dict[str, Any]], *, counters: tuple[str, ...]) -> None:
        dialect = self._session.get_bind().dialect.name
        self._session.connection().execute(_prebuilt_upsert(dialect, table, counters), list(rows))

    def history(self, user_id: uuid.UUID, *, top: int) -> model.History:
        """The ranking's input, bounded by ``top``: the database ranks and cuts, Python ranks the rest.

        The candidates bought together with the user's products are scored, ordered and cut to
        ``top`` in one aggregate query (``GROUP BY`` over the pairs from the user's products,
        ``ORDER BY`` score, popularity, id, ``LIMIT``); only their pairs come back. The most
        popular products come from ``ix_recommendation_popularity_ranked``, read from the top
        until ``top`` not bought are found. Before, every scoring pair and the whole popularity
        table (sorted without an index) went to Python: 75 ms with 100k pairs, 10 times the
        time with 1k.
        """
        mine = select(PURCHASES.c.product_id).where(PURCHASES.c.user_id == user_id)
        # Pairs from a product the user bought to one they did not: the only pairs that score.
        scoring = (PAIRS.c.product_id.in_(mine), PAIRS.c.other_product_id.not_in(mine), PAIRS.c["count"] > 0)
        scores = (
            select(PAIRS.c.other_product_id.label("product_id"), func.sum(PAIRS.c["count"]).label("score"))
            .where(*scoring)
            .group_by(PAIRS.c.other_product_id)
            .subquery()
        )
        popularity = func.coalesce(POPULARITY.c.orders, 0)
        best = (
            select(scores.c.product_id)
            .select_from(scores.outerjoin(POPULARITY, POPULARITY.c.product_id == scores.c.product_id))
            .order_by(scores.c.score.desc(), popularity.desc(), scores.c.product_id)
            .limit(top)
        )
        most_popular = (
            select(POPULARITY.c.product_id, POPULARITY.c.orders)
            .where(POPULARITY.c.product_id.not_in(mine))
            .order_by(POPULARITY.c.orders.desc(), POPULARITY.c.product_id)
            .limit(top)
        )

        bought = frozenset(self._session.scalars(mine))
        candidates = list(self._session.scalars(best))
        together: dict[model.Pair, int] = {}
        popular: dict[uuid.UUID, int] = {}
        if candidates:
            pairs = select(PAIRS.c.product_id, PAIRS.c.other_product_id, PAIRS.c["count"]).where(
                *scoring, PAIRS.c.other_product_id.in_(candidates)
            )
            together = {(product_id, other): count for product_id, other, count in self._session.execute(pairs)}
            of_candidates = select(POPULARITY.c.product_id, POPULARITY.c.orders).where(
                POPULARITY.c.product_id.in_(candidates)
            )
            popular.update({product_id: orders for product_id, orders in self._session.execute(of_candidates)})
        popular.update({product_id: orders for product_id, orders in self._session.execute(most_popular)})
        return model.History(bought=bought, together=together, popularity=popular)
