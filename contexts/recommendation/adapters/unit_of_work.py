"""The recommendation context's transaction boundary on its own database."""

from __future__ import annotations

from sqlalchemy.orm import Session

from contexts.recommendation.adapters.repository import SqlAlchemyProfileRepository
from infrastructure.db.unit_of_work import SqlAlchemyUnitOfWork


class SqlAlchemyRecommendationUnitOfWork(SqlAlchemyUnitOfWork):
    profiles: SqlAlchemyProfileRepository

    def _open(self, session: Session) -> None:
        self.profiles = SqlAlchemyProfileRepository(session)
