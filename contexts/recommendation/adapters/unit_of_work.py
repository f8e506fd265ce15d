"""The recommendation context's transaction boundary on its own database."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from contexts.recommendation.adapters.repository import (
    SqlAlchemyProfileRepository,
    count_order_at_once,
    count_order_parameters,
)
from contexts.recommendation.domain import model
from infrastructure.unit_of_work import SqlAlchemyUnitOfWork


class SqlAlchemyRecommendationUnitOfWork(SqlAlchemyUnitOfWork):
    profiles: SqlAlchemyProfileRepository

    def _open(self, session: Session) -> None:
        self.profiles = SqlAlchemyProfileRepository(session)

    def count_order_and_commit(
        self, order_id: uuid.UUID, user_id: uuid.UUID, basket: model.Basket, *, now: datetime
    ) -> None:
        """On PostgreSQL one statement (:func:`count_order_at_once`), which the commit sends on
        its own with the delivery's inbox row when it can (``SqlAlchemyUnitOfWork.stage``):
        one round trip where BEGIN, six statements and COMMIT were eight. Elsewhere the
        repository's statements, then the commit."""
        if self._database.engine.dialect.name == "postgresql" and basket.products:
            self.stage(count_order_at_once(), count_order_parameters(order_id, user_id, basket, now))
        else:
            self.profiles.create(user_id, now=now)
            self.profiles.record(order_id, user_id, basket)
        self.commit()
