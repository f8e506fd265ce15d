"""The order context's transaction boundary on its own database."""

from __future__ import annotations

from sqlalchemy.orm import Session

from contexts.order.adapters.repository import (
    SqlAlchemyIdempotencyStore,
    SqlAlchemyOrderRepository,
    add_in_one_statement,
)
from contexts.order.domain import model
from infrastructure.db.unit_of_work import SqlAlchemyUnitOfWork


class SqlAlchemyOrderUnitOfWork(SqlAlchemyUnitOfWork):
    orders: SqlAlchemyOrderRepository
    idempotency: SqlAlchemyIdempotencyStore

    def _open(self, session: Session) -> None:
        self.orders = SqlAlchemyOrderRepository(session, self.seen)
        self.idempotency = SqlAlchemyIdempotencyStore(session)

    def add_and_commit(self, order: model.Order) -> None:
        """On PostgreSQL, one statement on its own: the order, its lines, its events and their
        deliveries (``commit_with_events_if``), where BEGIN, four INSERTs and COMMIT were six
        round trips; elsewhere (SQLite, where a transaction costs no round trip, or once the
        unit of work has begun one) the repository's INSERTs and a commit."""
        statement, parameters = add_in_one_statement(order)
        stored = self.commit_with_events_if(statement, parameters, [order])
        if stored is None:
            self.orders.add(order)
            self.commit()
        elif not stored:
            raise RuntimeError(f"the order {order.id} was not stored: its INSERT returned no row")
