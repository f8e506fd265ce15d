"""The notification context's use cases: remembering whom to write to, and writing to them.

Learning who a user is and welcoming them are two use cases (and two subscribers), so that a
welcome the mail server keeps refusing (until its delivery is given up) never leaves the user
unknown here: their order confirmations only need the recipient.

Each mail answers one delivered event: its Message-ID and its record follow from the event's id,
so the delivery is required. It checks, reads, sends, then records in ONE write unit of work
(which also puts the delivery into the inbox). The mail goes out before that transaction opens,
because an SMTP conversation may take seconds and must not hold a database writer.

Delivery is therefore *at least once*, not exactly once: if the process dies after the mailer
accepted a message and before the record commits, the event is delivered again and the same
message (same Message-ID, derived from the event id) is sent again. The file mailer then
overwrites the same file, so there is still one email; over SMTP the customer may receive two
copies, which their mail software can recognise as one by the Message-ID. Every other
redelivery finds the event handled and sends nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from contexts.notification.application.ports import Mailer, UnitOfWorkFactory
from contexts.notification.domain import messages, model
from infrastructure.events.delivery import Delivery


class RecipientUnknown(Exception):
    """An order names a user whose ``UserRegistered`` has not reached this context yet.

    Events of different publishers may arrive in any order; raising makes the dispatcher
    try again later instead of dropping the confirmation.
    """

    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__(f"no recipient known for user {user_id} yet")
        self.user_id = user_id


@dataclass(frozen=True)
class RememberRecipient:
    recipient: model.Recipient


@dataclass(frozen=True)
class SendWelcome:
    recipient: model.Recipient


@dataclass(frozen=True)
class SendOrderConfirmation:
    user_id: uuid.UUID
    order: model.PlacedOrder


@dataclass(frozen=True)
class SendCancellationNotice:
    user_id: uuid.UUID
    order: model.CancelledOrder


class RememberRecipientHandler:
    """Remember a user's name and address: their orders' confirmations go there.

    It sends nothing, so it needs no check of its own: a redelivery's commit is refused by the
    inbox and changes nothing."""

    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, command: RememberRecipient, *, delivery: Delivery | None = None) -> None:
        with self._uow(delivery=delivery) as writing:
            writing.recipients.save(command.recipient)
            writing.commit()


class SendWelcomeHandler:
    """Welcome a new user. The event names them, so the welcome stores nothing but its record."""

    def __init__(self, *, uow: UnitOfWorkFactory, mailer: Mailer) -> None:
        self._uow = uow
        self._mailer = mailer

    def __call__(self, command: SendWelcome, *, delivery: Delivery) -> None:
        with self._uow(write=False, delivery=delivery) as reading:
            if reading.already_handled():
                return
        mail = messages.welcome(delivery.event_id, command.recipient)
        self._mailer.send(mail)
        _record(self._uow, delivery, mail, model.MailKind.WELCOME)


# What a mail to a buyer about their order says: it was placed, or it was cancelled.
BuyerMail = SendOrderConfirmation | SendCancellationNotice


class MailTheBuyerHandler:
    """Confirm an order to its buyer, listing what they ordered, or tell them it is cancelled;
    raises :class:`RecipientUnknown`.

    The events carry only the buyer's id: the address comes from the recipient this context
    remembered from ``UserRegistered``. Check, read, send, record: the mail answering the
    delivered event goes to the buyer once (see the module's docstring for the one crash that
    can send it twice)."""

    def __init__(self, *, uow: UnitOfWorkFactory, mailer: Mailer) -> None:
        self._uow = uow
        self._mailer = mailer

    def __call__(self, command: BuyerMail, *, delivery: Delivery) -> None:
        with self._uow(write=False, delivery=delivery) as reading:
            answered, recipient = reading.recipient_unless_handled(command.user_id)
        if answered:
            return
        if recipient is None:
            raise RecipientUnknown(command.user_id)
        if isinstance(command, SendOrderConfirmation):
            mail = messages.order_confirmation(delivery.event_id, recipient, command.order)
            kind = model.MailKind.ORDER_CONFIRMATION
        else:
            mail = messages.order_cancellation(delivery.event_id, recipient, command.order)
            kind = model.MailKind.ORDER_CANCELLATION
        self._mailer.send(mail)
        _record(self._uow, delivery, mail, kind)


def _record(uow: UnitOfWorkFactory, delivery: Delivery, mail: model.Mail, kind: model.MailKind) -> None:
    """Record the mail sent, with the delivery it answered, in one write unit of work."""
    with uow(delivery=delivery) as writing:
        writing.sent.add(model.SentMail.of(mail, event_id=delivery.event_id, kind=kind, sent_at=_now()))
        writing.commit()


def _now() -> datetime:
    return datetime.now(timezone.utc)
