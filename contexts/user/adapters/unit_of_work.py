"""The user context's transaction boundary on its own database."""

from __future__ import annotations

from sqlalchemy.orm import Session

from contexts.user.adapters.repository import SqlAlchemyUserRepository
from infrastructure.db.unit_of_work import SqlAlchemyUnitOfWork


class SqlAlchemyUserUnitOfWork(SqlAlchemyUnitOfWork):
    users: SqlAlchemyUserRepository

    def _open(self, session: Session) -> None:
        self.users = SqlAlchemyUserRepository(session, self.seen)
