"""The notification context's values: who is written to, what is written, what was sent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum


class MailKind(str, Enum):
    WELCOME = "welcome"
    ORDER_CONFIRMATION = "order-confirmation"
    ORDER_CANCELLATION = "order-cancellation"


@dataclass(frozen=True)
class Recipient:
    """A registered user as this context knows them: learned from ``UserRegistered``."""

    user_id: uuid.UUID
    email: str
    name: str


@dataclass(frozen=True)
class Mail:
    """One message, ready for any mailer. ``message_id`` is its RFC 5322 Message-ID."""

    message_id: str
    to_address: str
    to_name: str
    subject: str
    text: str


@dataclass(frozen=True)
class OrderedItem:
    name: str
    sku: str
    quantity: int
    unit_price: Decimal

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True)
class PlacedOrder:
    """An order as its confirmation shows it, in this context's own words."""

    order_id: uuid.UUID
    items: tuple[OrderedItem, ...]
    total: Decimal
    currency: str


@dataclass(frozen=True)
class CancelledOrder:
    """An order as its cancellation notice shows it: which one, and whether the buyer cancelled
    it themselves (else the shop did, and the mail says so, since the buyer did not ask)."""

    order_id: uuid.UUID
    by_buyer: bool


@dataclass(frozen=True)
class SentMail:
    """The record that the mail answering an event went out."""

    message_id: str
    event_id: uuid.UUID
    kind: MailKind
    to_address: str
    subject: str
    sent_at: datetime

    @classmethod
    def of(cls, mail: Mail, *, event_id: uuid.UUID, kind: MailKind, sent_at: datetime) -> SentMail:
        return cls(
            message_id=mail.message_id,
            event_id=event_id,
            kind=kind,
            to_address=mail.to_address,
            subject=mail.subject,
            sent_at=sent_at,
        )
