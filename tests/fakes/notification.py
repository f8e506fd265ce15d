"""The notification context's ports in memory: recipients, sent mail, their units of work, and a mailer that records."""

from __future__ import annotations

import uuid
from typing import Self

from contexts.notification.application.ports import MailNotSent, RecipientRepository, SentMailRepository
from contexts.notification.domain import messages
from contexts.notification.domain.model import Mail, MailKind, Recipient, SentMail
from infrastructure.events.delivery import Delivery


class AlreadyRecorded(Exception):
    """What the real inbox raises when a second commit records the same delivery."""


class MailStore:
    """The context's data and its inbox: which (subscriber, event) deliveries were handled."""

    def __init__(self) -> None:
        self.recipients: dict[uuid.UUID, Recipient] = {}
        self.sent: dict[str, SentMail] = {}
        self.handled: set[tuple[str, uuid.UUID]] = set()
        self.commits = 0

    def __call__(self, *, write: bool = True, delivery: Delivery | None = None) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, write=write, delivery=delivery)


class FakeRecipients:
    def __init__(self, rows: dict[uuid.UUID, Recipient]) -> None:
        self.rows = rows

    def get(self, user_id: uuid.UUID) -> Recipient | None:
        return self.rows.get(user_id)

    def save(self, recipient: Recipient) -> None:
        self.rows[recipient.user_id] = recipient


class FakeSentMail:
    def __init__(self, rows: dict[str, SentMail]) -> None:
        self.rows = rows

    def add(self, sent: SentMail) -> None:
        assert sent.message_id not in self.rows, "the same message recorded twice"
        self.rows[sent.message_id] = sent

    def get(self, message_id: str) -> SentMail | None:
        return self.rows.get(message_id)


class FakeUnitOfWork:
    """Changes are staged on copies and reach the store only on commit, like a transaction."""

    def __init__(self, store: MailStore, *, write: bool, delivery: Delivery | None) -> None:
        self._store = store
        self._write = write
        self._delivery = None if delivery is None else (delivery.subscriber, delivery.event_id)

    def __enter__(self) -> Self:
        self._recipients = FakeRecipients(dict(self._store.recipients))
        self._sent = FakeSentMail(dict(self._store.sent))
        self.recipients: RecipientRepository = self._recipients
        self.sent: SentMailRepository = self._sent
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def already_handled(self) -> bool:
        return self._delivery in self._store.handled

    def recipient_unless_handled(self, user_id: uuid.UUID) -> tuple[bool, Recipient | None]:
        if self.already_handled():
            return True, None
        return False, self._recipients.get(user_id)

    def commit(self) -> None:
        assert self._write, "a read-only unit of work was committed"
        assert self._delivery is not None, "subscribers commit for their delivery"
        if self._delivery in self._store.handled:
            raise AlreadyRecorded
        self._store.recipients = self._recipients.rows
        self._store.sent = self._sent.rows
        self._store.handled.add(self._delivery)
        self._store.commits += 1


class RecordingMailer:
    """Sends unless told to fail: every mail (``failure``) or the mails of some kinds (``refused``)."""

    def __init__(self) -> None:
        self.sent: list[Mail] = []
        self.failure: Exception | None = None
        self.refused: set[MailKind] = set()

    def send(self, mail: Mail) -> None:
        if self.failure is not None:
            raise self.failure
        if any(mail.message_id.endswith(f".{kind.value}@{messages.SHOP_NAME}>") for kind in self.refused):
            raise MailNotSent(f"550 message refused for {mail.to_address}")
        self.sent.append(mail)
