"""The audit context's transaction boundary on its own database."""

from __future__ import annotations

from sqlalchemy.orm import Session

from contexts.audit.adapters.repository import SqlAlchemyAuditEntryRepository
from infrastructure.db.unit_of_work import SqlAlchemyUnitOfWork


class SqlAlchemyAuditUnitOfWork(SqlAlchemyUnitOfWork):
    entries: SqlAlchemyAuditEntryRepository

    def _open(self, session: Session) -> None:
        self.entries = SqlAlchemyAuditEntryRepository(session, stage=self.stage, write_staged=self.write_staged)

