"""Recipients and sent mail stored with SQLAlchemy, translated to and from the domain values.

The reads and writes an order confirmation makes (its recipient, its record) are prebuilt
statements, not the ORM's identity map and unit of work: they run once per order, and the
ORM's bookkeeping for a row read once or written once cost more than the statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session

from contexts.notification.adapters.orm import RecipientRow, SentMailRow
from contexts.notification.domain import model
from infrastructure.db.unit_of_work import Stage

_RECIPIENT = select(RecipientRow.email, RecipientRow.name).where(RecipientRow.user_id == bindparam("user_id"))
_INSERT_SENT_MAIL = insert(cast(Table, SentMailRow.__table__))  # its columns: the keys of the parameters


class SqlAlchemyRecipientRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, user_id: uuid.UUID) -> model.Recipient | None:
        row = self._session.execute(_RECIPIENT, {"user_id": user_id}).first()
        return model.Recipient(user_id=user_id, email=row.email, name=row.name) if row else None

    def save(self, recipient: model.Recipient) -> None:
        now = datetime.now(timezone.utc)
        row = self._session.get(RecipientRow, recipient.user_id)
        if row is None:
            self._session.add(
                RecipientRow(user_id=recipient.user_id, email=recipient.email, name=recipient.name, updated_at=now)
            )
            return
        row.email = recipient.email
        row.name = recipient.name
        row.updated_at = now


class SqlAlchemySentMailRepository:
    """One row per message id. Should two deliveries of one event race (a lease ran out), the
    later one's insert fails on the key and its retry finds the event handled."""

    def __init__(self, session: Session, *, stage: Stage, write_staged: Callable[[], None]) -> None:
        self._session = session
        self._stage = stage
        self._write_staged = write_staged

    def add(self, sent: model.SentMail) -> None:
        """Staged for the commit (see ``SqlAlchemyUnitOfWork.stage``), which may send it with
        the delivery's inbox row as one statement."""
        self._stage(
            _INSERT_SENT_MAIL,
            {
                "message_id": sent.message_id,
                "event_id": sent.event_id,
                "kind": sent.kind.value,
                "to_address": sent.to_address,
                "subject": sent.subject,
                "sent_at": sent.sent_at,
            },
        )

    def get(self, message_id: str) -> model.SentMail | None:
        self._write_staged()
        row = self._session.get(SentMailRow, message_id)
        if row is None:
            return None
        return model.SentMail(
            message_id=row.message_id,
            event_id=row.event_id,
            kind=model.MailKind(row.kind),
            to_address=row.to_address,
            subject=row.subject,
            sent_at=row.sent_at,
        )
