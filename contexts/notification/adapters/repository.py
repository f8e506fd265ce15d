"""Recipients and sent mail stored with SQLAlchemy, translated to and from the domain values."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy.orm import Session

from contexts.notification.adapters.orm import RecipientRow, SentMailRow
from contexts.notification.domain import model


class SqlAlchemyRecipientRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, user_id: uuid.UUID) -> model.Recipient | None:
        row = self._session.get(RecipientRow, user_id)
        return model.Recipient(user_id=row.user_id, email=row.email, name=row.name) if row else None

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
    later commit fails on the key and its retry finds the event handled."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, sent: model.SentMail) -> None:
        self._session.add(
            SentMailRow(
                message_id=sent.message_id,
                event_id=sent.event_id,
                kind=sent.kind.value,
                to_address=sent.to_address,
                subject=sent.subject,
                sent_at=sent.sent_at,
            )
        )

    def get(self, message_id: str) -> model.SentMail | None:
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
