"""The product context's transaction boundary on its own database."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contexts.product.adapters.repository import (
    CONFIRM_IF_RESERVED_RETURNING,
    RESERVATION_LINES_TABLE,
    RESERVATIONS_TABLE,
    RESERVE_ONE_LINE,
    SqlAlchemyProductRepository,
    SqlAlchemyReservationRepository,
    SqlAlchemyStockRepository,
    reserve_one_line_parameters,
)
from contexts.product.application.ports import ReservationExists
from contexts.product.domain import model
from infrastructure.db.failures import unique_violation_on
from infrastructure.db.unit_of_work import SqlAlchemyUnitOfWork


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

    def reserve_and_commit(self, reservation: model.Reservation) -> bool | None:
        """On PostgreSQL, a one-line reservation is one statement on its own: its stock taken,
        the reservation, its line, its event and the event's deliveries stored and committed
        (:data:`RESERVE_ONE_LINE` through ``commit_with_events_if``), where BEGIN, five
        statements and COMMIT were seven round trips. Elsewhere, or with several lines, None."""
        parameters = reserve_one_line_parameters(reservation)
        if parameters is None:
            return None
        try:
            return self.commit_with_events_if(RESERVE_ONE_LINE, parameters, [reservation])
        except IntegrityError as error:
            # A twin stored the reservation first: its key (or its line's, which PostgreSQL
            # may check first). Any other refusal is a fault, not a twin to judge.
            if unique_violation_on(error, (RESERVATIONS_TABLE, RESERVATION_LINES_TABLE)):
                raise ReservationExists(str(reservation.id)) from error
            raise
