"""The product context's transaction boundary on its own database."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from contexts.product.adapters.repository import (
    CONFIRM_IF_RESERVED_RETURNING,
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

    def confirm_reserved_and_commit(self, reservation_id: uuid.UUID) -> bool:
        """On PostgreSQL inside a delivery, one statement on its own that confirms and records
        the delivery (``commit_alone_if``); elsewhere the same UPDATE and a commit."""
        alone = self.commit_alone_if(CONFIRM_IF_RESERVED_RETURNING, {"reservation_id": reservation_id})
        if alone is not None:
            return alone
        if not self.reservations.confirm_if_reserved(reservation_id):
            return False
        self.commit()
        return True
