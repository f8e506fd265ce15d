"""The notification context's transaction boundary on its own database."""

from __future__ import annotations

from sqlalchemy.orm import Session

from contexts.notification.adapters.repository import SqlAlchemyRecipientRepository, SqlAlchemySentMailRepository
from infrastructure.unit_of_work import SqlAlchemyUnitOfWork


class SqlAlchemyNotificationUnitOfWork(SqlAlchemyUnitOfWork):
    recipients: SqlAlchemyRecipientRepository
    sent: SqlAlchemySentMailRepository

    def _open(self, session: Session) -> None:
        self.recipients = SqlAlchemyRecipientRepository(session)
        self.sent = SqlAlchemySentMailRepository(session)
