"""The product context's transaction boundary on its own database."""

from __future__ import annotations

from sqlalchemy.orm import Session

from contexts.product.adapters.repository import (
    SqlAlchemyProductRepository,
    SqlAlchemyReservationRepository,
    SqlAlchemyStockRepository,
)
from infrastructure.unit_of_work import SqlAlchemyUnitOfWork


class SqlAlchemyProductUnitOfWork(SqlAlchemyUnitOfWork):
    products: SqlAlchemyProductRepository
    stock: SqlAlchemyStockRepository
    reservations: SqlAlchemyReservationRepository

    def _open(self, session: Session) -> None:
        self.products = SqlAlchemyProductRepository(session, self.seen)
        self.stock = SqlAlchemyStockRepository(session)
        self.reservations = SqlAlchemyReservationRepository(session, self.seen)
