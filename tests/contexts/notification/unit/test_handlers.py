"""The notification context on in-memory fakes: what the welcome and the order confirmation
say, that their ids follow from the event, and that each event gets its mail once: a handled
event sends nothing, an order of an unknown buyer waits (raises) and a failed send records
nothing, so the retry sends again. The recipient is remembered by a subscriber of its own, so a
welcome that keeps failing does not keep the buyer's confirmations from going out."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Protocol

import pytest

from contexts.notification.application.handlers import (
    MailTheBuyerHandler,
    RecipientUnknown,
    RememberRecipientHandler,
    SendWelcomeHandler,
)
from contexts.notification.application.ports import MailNotSent
from contexts.notification.application.subscribers import (
    when_order_cancelled_send_notice,
    when_order_placed_send_confirmation,
    when_user_registered_remember_recipient,
    when_user_registered_send_welcome,
)
from contexts.notification.domain import messages
from contexts.notification.domain.model import MailKind, OrderedItem, PlacedOrder, Recipient
from contexts.order.events import CANCELLED_BY_ADMIN, CANCELLED_BY_CUSTOMER, OrderCancelled, OrderedLine, OrderPlaced
from contexts.user.events import UserRegistered
from infrastructure.events.delivery import Delivery
from tests.fakes.notification import (
    AlreadyRecorded,
    FakeUnitOfWork,
    MailStore,
    RecordingMailer,
)

ADA = Recipient(user_id=uuid.uuid4(), email="ada@example.com", name="Ada Lovelace")
RECIPIENTS = "notification.recipients"
WELCOME = "notification.welcome_email"
CONFIRMATION = "notification.order_confirmation_email"


@pytest.fixture
def store() -> MailStore:
    return MailStore()


@pytest.fixture
def mailer() -> RecordingMailer:
    return RecordingMailer()


@pytest.fixture
def event_id() -> uuid.UUID:
    return uuid.uuid4()


class Deliver(Protocol):
    def __call__(
        self,
        subscriber: str,
        event: UserRegistered | OrderPlaced | OrderCancelled,
        answering: uuid.UUID | None = None,
        /,
    ) -> None: ...


@pytest.fixture
def deliver(store: MailStore, mailer: RecordingMailer, event_id: uuid.UUID) -> Deliver:
    """Run one subscriber as the dispatcher would, as its delivery of ``answering`` or else ``event_id``."""

    def run(
        subscriber: str, event: UserRegistered | OrderPlaced | OrderCancelled, answering: uuid.UUID | None = None
    ) -> None:
        delivery = Delivery(subscriber, answering or event_id)
        if subscriber == CONFIRMATION:
            # One subscriber sends both order mails (app/registry.py), chosen by event type.
            if isinstance(event, OrderCancelled):
                when_order_cancelled_send_notice(
                    event, delivery, mail_the_buyer=MailTheBuyerHandler(uow=store, mailer=mailer)
                )
            else:
                assert isinstance(event, OrderPlaced)
                when_order_placed_send_confirmation(
                    event, delivery, mail_the_buyer=MailTheBuyerHandler(uow=store, mailer=mailer)
                )
            return
        assert isinstance(event, UserRegistered)
        if subscriber == RECIPIENTS:
            when_user_registered_remember_recipient(event, delivery, remember=RememberRecipientHandler(uow=store))
        else:
            assert subscriber == WELCOME
            when_user_registered_send_welcome(event, delivery, welcome=SendWelcomeHandler(uow=store, mailer=mailer))

    return run


def registered(recipient: Recipient = ADA) -> UserRegistered:
    return UserRegistered(user_id=recipient.user_id, email=recipient.email, name=recipient.name)


def placed(user_id: uuid.UUID = ADA.user_id) -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        user_id=user_id,
        lines=(
            OrderedLine(product_id=uuid.uuid4(), quantity=3, unit_price=Decimal("2.50"), sku="MUG-1", name="Blue mug"),
            OrderedLine(product_id=uuid.uuid4(), quantity=1, unit_price=Decimal("19.99"), sku="TEA-7", name="Tea"),
        ),
        total=Decimal("27.49"),
        currency="EUR",
    )


def cancelled(user_id: uuid.UUID = ADA.user_id, reason: str = CANCELLED_BY_CUSTOMER) -> OrderCancelled:
    return OrderCancelled(order_id=uuid.uuid4(), user_id=user_id, reason=reason)


# --- the messages ----------------------------------------------------------------------------


def test_the_welcome_greets_the_user_by_name_at_their_address() -> None:
    event_id = uuid.uuid4()

    mail = messages.welcome(event_id, ADA)

    assert (mail.to_address, mail.to_name) == ("ada@example.com", "Ada Lovelace")
    assert "Ada Lovelace" in mail.subject
    assert "Welcome" in mail.subject
    assert mail.text.startswith("Hello Ada Lovelace,")
    assert "ada@example.com" in mail.text
    assert mail.message_id == f"<{event_id}.welcome@modular-shop>"


def test_the_confirmation_lists_every_line_with_its_total_and_the_order_total() -> None:
    order = PlacedOrder(
        order_id=uuid.uuid4(),
        items=(
            OrderedItem(name="Blue mug", sku="MUG-1", quantity=3, unit_price=Decimal("2.50")),
            OrderedItem(name="Tea", sku="TEA-7", quantity=1, unit_price=Decimal("19.99")),
        ),
        total=Decimal("27.49"),
        currency="EUR",
    )

    mail = messages.order_confirmation(uuid.uuid4(), ADA, order)

    assert (mail.to_address, mail.to_name) == ("ada@example.com", "Ada Lovelace")
    assert str(order.order_id) in mail.subject
    assert str(order.order_id) in mail.text
    assert "Blue mug (MUG-1): 3 × 2.50 EUR = 7.50 EUR" in mail.text
    assert "Tea (TEA-7): 1 × 19.99 EUR = 19.99 EUR" in mail.text
    assert "Total: 27.49 EUR" in mail.text
    assert mail.text.index("Blue mug") < mail.text.index("Tea (") < mail.text.index("Total:")


def test_amounts_are_shown_with_two_decimals_whatever_their_exponent() -> None:
    order = PlacedOrder(
        order_id=uuid.uuid4(),
        items=(OrderedItem(name="Pen", sku="PEN", quantity=4, unit_price=Decimal("2.5")),),
        total=Decimal("10"),
        currency="USD",
    )

    text = messages.order_confirmation(uuid.uuid4(), ADA, order).text

    assert "Pen (PEN): 4 × 2.50 USD = 10.00 USD" in text
    assert "Total: 10.00 USD" in text


def test_message_ids_follow_from_the_event_and_the_kind_only() -> None:
    event_id, other_event = uuid.uuid4(), uuid.uuid4()

    assert messages.message_id(event_id, MailKind.WELCOME) == messages.message_id(event_id, MailKind.WELCOME)
    assert messages.welcome(event_id, ADA) == messages.welcome(event_id, ADA)
    assert messages.message_id(event_id, MailKind.ORDER_CONFIRMATION) == (
        f"<{event_id}.order-confirmation@modular-shop>"
    )
    assert (
        len(
            {
                messages.message_id(event_id, MailKind.WELCOME),
                messages.message_id(event_id, MailKind.ORDER_CONFIRMATION),
                messages.message_id(other_event, MailKind.WELCOME),
            }
        )
        == 3
    )


# --- the delivery being answered -------------------------------------------------------------


# --- the recipient ---------------------------------------------------------------------------


def test_a_registration_remembers_the_recipient_and_mails_nothing(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer, event_id: uuid.UUID
) -> None:
    deliver(RECIPIENTS, registered())

    assert store.recipients == {ADA.user_id: ADA}
    assert (mailer.sent, store.sent) == ([], {})
    assert store.handled == {(RECIPIENTS, event_id)}
    assert store.commits == 1


def test_a_redelivered_registration_is_refused_by_the_inbox_and_changes_nothing(
    deliver: Deliver, store: MailStore
) -> None:
    deliver(RECIPIENTS, registered())

    with pytest.raises(AlreadyRecorded):
        deliver(RECIPIENTS, registered(Recipient(user_id=ADA.user_id, email="other@example.com", name="Other")))

    assert store.recipients == {ADA.user_id: ADA}
    assert store.commits == 1


# --- welcome ---------------------------------------------------------------------------------


def test_a_registration_sends_one_welcome_and_records_it_but_not_the_recipient(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer, event_id: uuid.UUID
) -> None:
    deliver(WELCOME, registered())

    assert mailer.sent == [messages.welcome(event_id, ADA)]
    assert store.recipients == {}
    (sent,) = store.sent.values()
    assert (sent.message_id, sent.event_id, sent.kind) == (mailer.sent[0].message_id, event_id, MailKind.WELCOME)
    assert (sent.to_address, sent.subject) == (ADA.email, mailer.sent[0].subject)
    assert store.commits == 1


def test_a_handled_registration_sends_nothing_again(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer
) -> None:
    deliver(WELCOME, registered())

    deliver(WELCOME, registered())

    assert len(mailer.sent) == 1
    assert store.commits == 1


def test_a_failed_welcome_records_nothing_so_the_retry_sends_it(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer, event_id: uuid.UUID
) -> None:
    mailer.failure = MailNotSent("server down")

    with pytest.raises(MailNotSent):
        deliver(WELCOME, registered())

    assert (store.recipients, store.sent, store.handled) == ({}, {}, set())
    mailer.failure = None
    deliver(WELCOME, registered())
    assert mailer.sent == [messages.welcome(event_id, ADA)]


# --- order confirmation ----------------------------------------------------------------------


def test_an_order_of_a_known_user_sends_them_its_confirmation(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer, event_id: uuid.UUID
) -> None:
    store.recipients[ADA.user_id] = ADA
    event = placed()

    deliver(CONFIRMATION, event)

    (mail,) = mailer.sent
    assert mail.message_id == f"<{event_id}.order-confirmation@modular-shop>"
    assert (mail.to_address, mail.to_name) == (ADA.email, ADA.name)
    assert "Blue mug (MUG-1): 3 × 2.50 EUR = 7.50 EUR" in mail.text
    assert "Tea (TEA-7): 1 × 19.99 EUR = 19.99 EUR" in mail.text
    assert "Total: 27.49 EUR" in mail.text
    assert str(event.order_id) in mail.subject
    sent = store.sent[mail.message_id]
    assert (sent.event_id, sent.kind, sent.to_address) == (event_id, MailKind.ORDER_CONFIRMATION, ADA.email)


def test_the_confirmation_goes_to_the_buyer_not_to_another_known_user(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer
) -> None:
    grace = Recipient(user_id=uuid.uuid4(), email="grace@example.com", name="Grace Hopper")
    store.recipients.update({ADA.user_id: ADA, grace.user_id: grace})

    deliver(CONFIRMATION, placed(user_id=grace.user_id))

    assert [(mail.to_address, mail.to_name) for mail in mailer.sent] == [("grace@example.com", "Grace Hopper")]


def test_an_order_of_a_user_not_heard_of_yet_raises_and_sends_nothing(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer
) -> None:
    event = placed()

    with pytest.raises(RecipientUnknown) as raised:
        deliver(CONFIRMATION, event)

    assert raised.value.user_id == ADA.user_id
    assert mailer.sent == []
    assert (store.sent, store.handled) == ({}, set())


def test_the_confirmation_waits_for_the_recipient_then_goes_out(deliver: Deliver, mailer: RecordingMailer) -> None:
    order_event, registration_event = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(RecipientUnknown):
        deliver(CONFIRMATION, placed(), order_event)

    deliver(RECIPIENTS, registered(), registration_event)
    deliver(CONFIRMATION, placed(), order_event)

    assert [(mail.message_id, mail.to_address) for mail in mailer.sent] == [
        (f"<{order_event}.order-confirmation@modular-shop>", ADA.email)
    ]


def test_a_welcome_that_keeps_failing_does_not_hold_back_the_confirmation(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer
) -> None:
    registration_event, order_event = uuid.uuid4(), uuid.uuid4()
    mailer.refused = {MailKind.WELCOME}
    deliver(RECIPIENTS, registered(), registration_event)
    for _ in range(3):
        with pytest.raises(MailNotSent):
            deliver(WELCOME, registered(), registration_event)

    deliver(CONFIRMATION, placed(), order_event)

    assert [mail.message_id for mail in mailer.sent] == [f"<{order_event}.order-confirmation@modular-shop>"]
    assert store.handled == {(RECIPIENTS, registration_event), (CONFIRMATION, order_event)}


def test_a_handled_order_sends_nothing_again(deliver: Deliver, store: MailStore, mailer: RecordingMailer) -> None:
    store.recipients[ADA.user_id] = ADA
    event = placed()
    deliver(CONFIRMATION, event)

    deliver(CONFIRMATION, event)

    assert len(mailer.sent) == 1
    assert store.commits == 1


def test_a_failed_confirmation_records_nothing(deliver: Deliver, store: MailStore, mailer: RecordingMailer) -> None:
    store.recipients[ADA.user_id] = ADA
    mailer.failure = MailNotSent("server down")

    with pytest.raises(MailNotSent):
        deliver(CONFIRMATION, placed())

    assert (store.sent, store.handled) == ({}, set())


def test_a_crash_between_sending_and_recording_resends_the_same_message(
    store: MailStore, mailer: RecordingMailer, event_id: uuid.UUID
) -> None:
    store.recipients[ADA.user_id] = ADA
    event = placed()

    delivery = Delivery(CONFIRMATION, event_id)

    def crash(*, write: bool = True, delivery: Delivery | None = None) -> FakeUnitOfWork:
        if write:
            raise OSError("process killed before the commit")
        return store(write=False, delivery=delivery)

    with pytest.raises(OSError, match="killed"):
        when_order_placed_send_confirmation(
            event, delivery, mail_the_buyer=MailTheBuyerHandler(uow=crash, mailer=mailer)
        )
    when_order_placed_send_confirmation(event, delivery, mail_the_buyer=MailTheBuyerHandler(uow=store, mailer=mailer))

    first, again = mailer.sent
    assert first == again
    assert list(store.sent) == [first.message_id]


# --- order cancellation ----------------------------------------------------------------------


def test_a_cancelled_order_of_a_known_user_sends_them_one_notice(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer, event_id: uuid.UUID
) -> None:
    store.recipients[ADA.user_id] = ADA
    event = cancelled()

    deliver(CONFIRMATION, event)

    (mail,) = mailer.sent
    assert mail.message_id == f"<{event_id}.order-cancellation@modular-shop>"
    assert (mail.to_address, mail.to_name) == (ADA.email, ADA.name)
    assert mail.subject == f"Your modular-shop order {event.order_id} is cancelled"
    assert mail.text.startswith(f"Hello Ada Lovelace,\n\nyour order {event.order_id} has been cancelled as you asked.")
    sent = store.sent[mail.message_id]
    assert (sent.event_id, sent.kind, sent.to_address) == (event_id, MailKind.ORDER_CANCELLATION, ADA.email)


def test_the_notice_says_when_the_shop_cancelled_the_order(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer
) -> None:
    store.recipients[ADA.user_id] = ADA
    event = cancelled(reason=CANCELLED_BY_ADMIN)

    deliver(CONFIRMATION, event)

    assert f"your order {event.order_id} has been cancelled by the shop." in mailer.sent[0].text


def test_the_notice_goes_to_the_buyer_not_to_another_known_user(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer
) -> None:
    grace = Recipient(user_id=uuid.uuid4(), email="grace@example.com", name="Grace Hopper")
    store.recipients.update({ADA.user_id: ADA, grace.user_id: grace})

    deliver(CONFIRMATION, cancelled(user_id=grace.user_id, reason=CANCELLED_BY_ADMIN))

    assert [(mail.to_address, mail.to_name) for mail in mailer.sent] == [("grace@example.com", "Grace Hopper")]


def test_a_cancellation_of_a_user_not_heard_of_yet_raises_and_sends_nothing(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer
) -> None:
    with pytest.raises(RecipientUnknown) as raised:
        deliver(CONFIRMATION, cancelled())

    assert raised.value.user_id == ADA.user_id
    assert mailer.sent == []
    assert (store.sent, store.handled) == ({}, set())


def test_a_redelivered_cancellation_sends_nothing_again(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer
) -> None:
    store.recipients[ADA.user_id] = ADA
    event = cancelled()
    deliver(CONFIRMATION, event)

    deliver(CONFIRMATION, event)
    deliver(CONFIRMATION, event)

    assert len(mailer.sent) == 1
    assert store.commits == 1


def test_placing_and_cancelling_mail_a_confirmation_then_a_notice(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer
) -> None:
    store.recipients[ADA.user_id] = ADA
    placed_event, cancelled_event = uuid.uuid4(), uuid.uuid4()

    deliver(CONFIRMATION, placed(), placed_event)
    deliver(CONFIRMATION, cancelled(), cancelled_event)

    assert [mail.message_id for mail in mailer.sent] == [
        f"<{placed_event}.order-confirmation@modular-shop>",
        f"<{cancelled_event}.order-cancellation@modular-shop>",
    ]


def test_a_failed_notice_records_nothing_so_the_retry_sends_it(
    deliver: Deliver, store: MailStore, mailer: RecordingMailer, event_id: uuid.UUID
) -> None:
    store.recipients[ADA.user_id] = ADA
    event = cancelled()
    mailer.failure = MailNotSent("server down")
    with pytest.raises(MailNotSent):
        deliver(CONFIRMATION, event)
    assert (store.sent, store.handled) == ({}, set())

    mailer.failure = None
    deliver(CONFIRMATION, event)

    assert [mail.message_id for mail in mailer.sent] == [f"<{event_id}.order-cancellation@modular-shop>"]
