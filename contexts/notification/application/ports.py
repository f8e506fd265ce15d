"""What the notification context's subscribers need from the outside world."""

from __future__ import annotations

import uuid
from typing import Protocol, Self

from contexts.notification.domain import model
from infrastructure.events.delivery import Delivery


class MailNotSent(Exception):
    """The mailer could not hand the message on; the delivery fails and is retried."""


class Mailer(Protocol):
    def send(self, mail: model.Mail) -> None:
        """Hand ``mail`` on for delivery; raises :class:`MailNotSent`."""


class RecipientRepository(Protocol):
    def get(self, user_id: uuid.UUID) -> model.Recipient | None: ...

    def save(self, recipient: model.Recipient) -> None:
        """Store the recipient, replacing what was known about that user."""


class SentMailRepository(Protocol):
    def add(self, sent: model.SentMail) -> None: ...

    def get(self, message_id: str) -> model.SentMail | None: ...


class NotificationUnitOfWork(Protocol):
    recipients: RecipientRepository
    sent: SentMailRepository

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def already_handled(self) -> bool:
        """Whether the event being delivered already had its effect (its mail was recorded)."""
        ...

    def recipient_unless_handled(self, user_id: uuid.UUID) -> tuple[bool, model.Recipient | None]:
        """Whether the event being delivered already had its effect, and if not the recipient
        ``user_id`` (None if unknown): a mail's check before it is sent, in one read."""
        ...

    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, write: bool = True, delivery: Delivery | None = None) -> NotificationUnitOfWork:
        """A unit of work; made for ``delivery``, its commit records it in the context's inbox."""
        ...
