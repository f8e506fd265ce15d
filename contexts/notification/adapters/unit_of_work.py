"""The notification context's transaction boundary on its own database."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from sqlalchemy import Select, Table, bindparam, select
from sqlalchemy.orm import Session

from contexts.notification.adapters.orm import RecipientRow
from contexts.notification.adapters.repository import SqlAlchemyRecipientRepository, SqlAlchemySentMailRepository
from contexts.notification.domain import model
from infrastructure.db.unit_of_work import SqlAlchemyUnitOfWork
from infrastructure.events.inbox import handled


@functools.cache
def _before_sending(inbox: Table) -> Select[Any]:
    """Whether the delivery is in ``inbox``, and the recipient's address and name (NULL when
    unknown): built once per inbox table, as every order's confirmation runs it."""
    user_id = RecipientRow.user_id == bindparam("user_id")
    return select(
        handled(inbox).label("handled"),
        select(RecipientRow.email).where(user_id).scalar_subquery(),
        select(RecipientRow.name).where(user_id).scalar_subquery(),
    )


class SqlAlchemyNotificationUnitOfWork(SqlAlchemyUnitOfWork):
    recipients: SqlAlchemyRecipientRepository
    sent: SqlAlchemySentMailRepository

    def _open(self, session: Session) -> None:
        self.recipients = SqlAlchemyRecipientRepository(session)
        self.sent = SqlAlchemySentMailRepository(session, stage=self.stage, write_staged=self.write_staged)

    def recipient_unless_handled(self, user_id: uuid.UUID) -> tuple[bool, model.Recipient | None]:
        """Whether the delivery this unit of work was made for was already answered, and else
        whom to write to (None if
        the user is unknown here): in one statement outside any transaction, as a mail is
        checked for before it is sent. The two need not agree on a snapshot: the inbox row
        written with the mail's record is what keeps a second delivery from recording it, this
        check only spares sending it twice; a transaction around it would cost a BEGIN and a
        ROLLBACK (on PostgreSQL two more round trips) per mail."""
        inbox, delivery = self._inbox, self._delivery
        if inbox is None or delivery is None:
            return False, self.recipients.get(user_id)
        parameters = inbox.handled_parameters(delivery)
        with self._database.reading() as connection:
            answered, email, name = connection.execute(
                _before_sending(inbox.table), {**parameters, "user_id": user_id}
            ).one()
        if answered:
            return True, None
        return False, None if email is None else model.Recipient(user_id=user_id, email=email, name=name)
