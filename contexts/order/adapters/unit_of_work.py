"""The order context's transaction boundary on its own database."""

from __future__ import annotations

from sqlalchemy.orm import Session

from contexts.order.adapters.repository import SqlAlchemyIdempotencyStore, SqlAlchemyOrderRepository
from infrastructure.unit_of_work import SqlAlchemyUnitOfWork


class SqlAlchemyOrderUnitOfWork(SqlAlchemyUnitOfWork):
    orders: SqlAlchemyOrderRepository
    idempotency: SqlAlchemyIdempotencyStore

    def _open(self, session: Session) -> None:
        self.orders = SqlAlchemyOrderRepository(session, self.seen)
        self.idempotency = SqlAlchemyIdempotencyStore(session)
