"""Mail through the whole app: registering and ordering over HTTP, then the dispatcher, leave
in ``<instance>/mail`` exactly one welcome per registered user and one confirmation for the
buyer, each addressed to them; dispatching again or redelivering adds none, a confirmation
whose buyer is not known yet is retried until the context has remembered who they are, and a
welcome the mail server keeps refusing holds no confirmation back. A cancelled order mails its
buyer one notice, after the confirmation, with a name beyond ASCII encoded as RFC 2047 asks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from app.containers import ApplicationContainer, databases
from contexts.notification.application.ports import Mailer, MailNotSent
from contexts.notification.domain.model import Mail
from tests.conftest import Shop

ORDERS = "/api/v1/orders"
RECIPIENTS = "notification.recipients"
WELCOME = "notification.welcome_email"
CONFIRMATION = "notification.order_confirmation_email"
FAR_FUTURE = "2999-01-01 00:00:00.000000"
LONG_AGO = "2000-01-01 00:00:00.000000"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where the app's file mailer writes: the ``mail`` folder of the fixture's instance."""
    return tmp_path / "instance" / "mail"


def mails(folder: Path) -> list[EmailMessage]:
    found = []
    for file in sorted(folder.glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(file.read_bytes())
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def kind_of(message: EmailMessage) -> str:
    """The kind the Message-ID names: ``<event id.kind@modular-shop>``."""
    return str(message["Message-ID"]).split("@")[0].split(".", 1)[1]


def mailbox(folder: Path) -> dict[str, list[str]]:
    """Kinds of mail received, by address."""
    received: dict[str, list[str]] = defaultdict(list)
    for message in mails(folder):
        received[message["To"].addresses[0].addr_spec].append(kind_of(message))
    return {address: sorted(kinds) for address, kinds in received.items()}


def place_order(client: FlaskClient, shop: Shop, customer: dict[str, str]) -> dict[str, Any]:
    admin = shop.admin()
    mug = shop.product(admin, name="Blue mug", price="2.50", currency="EUR")
    tea = shop.product(admin, name="Green tea", price="19.99", currency="EUR")
    items = [{"product_id": mug["id"], "quantity": 3}, {"product_id": tea["id"], "quantity": 1}]
    response = client.post(ORDERS, json={"items": items}, headers=customer)
    assert response.status_code == 201, response.json
    order = response.json
    assert isinstance(order, dict)
    return order


def user_id_of(client: FlaskClient, headers: dict[str, str]) -> str:
    me = client.get("/api/v1/users/me", headers=headers).json
    assert isinstance(me, dict)
    return str(me["id"])


def set_due(container: ApplicationContainer, context: str, subscriber: str, moment: str, aggregate: str) -> int:
    """Make the subscriber's deliveries of ``aggregate``'s events pending and due at ``moment``."""
    with databases(container)[context].begin() as connection:
        count: int = connection.execute(
            text(
                f"UPDATE {context}_deliveries SET status = 'pending', claimed_until = NULL, completed_at = NULL, "
                "available_at = :moment WHERE subscriber = :subscriber AND aggregate_id = :aggregate"
            ),
            {"moment": moment, "subscriber": subscriber, "aggregate": aggregate},
        ).rowcount
    return count


def delivery_column(container: ApplicationContainer, context: str, column: str, subscriber: str, aggregate: str) -> Any:
    with databases(container)[context].begin() as connection:
        return connection.execute(
            text(f"SELECT {column} FROM {context}_deliveries WHERE subscriber = :subscriber AND aggregate_id = :a"),
            {"subscriber": subscriber, "a": aggregate},
        ).scalar_one()


def last_error(container: ApplicationContainer, context: str, subscriber: str, aggregate: str) -> str:
    return str(delivery_column(container, context, "last_error", subscriber, aggregate))


class RefusingWelcomes:
    """The app's mailer's ``send`` behind a server that rejects every welcome."""

    def __init__(self, send: Callable[[Mail], None]) -> None:
        self._send = send

    def __call__(self, mail: Mail) -> None:
        if ".welcome@" in mail.message_id:
            raise MailNotSent("550 5.7.1 message refused")
        self._send(mail)


def test_registering_and_ordering_mail_one_welcome_and_one_confirmation(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, folder: Path
) -> None:
    customer = shop.customer("ada@example.com")
    order = place_order(client, shop, customer)

    assert container.dispatcher().run_until_idle() > 0

    received = mailbox(folder)
    assert received.pop("ada@example.com") == ["order-confirmation", "welcome"]
    assert list(received.values()) == [["welcome"]], "the admin who made the products is welcomed too"
    assert len(list(folder.iterdir())) == 3
    to_ada = {kind_of(m): m for m in mails(folder) if m["To"].addresses[0].addr_spec == "ada@example.com"}
    for message in to_ada.values():
        assert message["To"].addresses[0].display_name == "Cus Tomer"
        assert message["From"].addresses[0].addr_spec == "shop@localhost"
    confirmation = to_ada["order-confirmation"]
    assert order["id"] in confirmation["Subject"]
    body = confirmation.get_content()
    assert "Blue mug" in body and "3 × 2.50 EUR = 7.50 EUR" in body
    assert "Green tea" in body and "1 × 19.99 EUR = 19.99 EUR" in body
    assert "Total: 27.49 EUR" in body
    assert "Cus Tomer" in to_ada["welcome"].get_content()


def test_dispatching_again_or_redelivering_mails_nothing_more(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, folder: Path
) -> None:
    customer = shop.customer()
    order = place_order(client, shop, customer)
    user_id = user_id_of(client, customer)
    container.dispatcher().run_until_idle()
    before = {file.name: file.read_bytes() for file in folder.iterdir()}

    assert container.dispatcher().run_until_idle() == 0
    # As if the process died before the deliveries' completion was recorded.
    redelivered = (
        set_due(container, "user", RECIPIENTS, LONG_AGO, user_id)
        + set_due(container, "user", WELCOME, LONG_AGO, user_id)
        + set_due(container, "order", CONFIRMATION, LONG_AGO, order["id"])
    )
    assert redelivered == 3
    assert container.dispatcher().run_until_idle() == redelivered

    assert {file.name: file.read_bytes() for file in folder.iterdir()} == before


def test_a_confirmation_for_a_buyer_not_known_yet_is_retried_once_they_are_remembered(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, folder: Path
) -> None:
    customer = shop.customer("grace@example.com")
    user_id = user_id_of(client, customer)
    order = place_order(client, shop, customer)
    # Remembering the buyer is held back, so the order's event reaches the context first.
    assert set_due(container, "user", RECIPIENTS, FAR_FUTURE, user_id) == 1

    container.dispatcher().run_until_idle()
    assert mailbox(folder)["grace@example.com"] == ["welcome"], "the welcome needs no stored recipient"
    assert "RecipientUnknown" in last_error(container, "order", CONFIRMATION, order["id"])

    set_due(container, "user", RECIPIENTS, LONG_AGO, user_id)
    container.dispatcher().run_until_idle()
    set_due(container, "order", CONFIRMATION, LONG_AGO, order["id"])
    container.dispatcher().run_until_idle()
    assert mailbox(folder)["grace@example.com"] == ["order-confirmation", "welcome"]


def test_a_welcome_the_server_keeps_refusing_does_not_hold_back_the_confirmation(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailer: Mailer = container.notification.mailer()
    with monkeypatch.context() as patched:
        # The mail use cases hold the app's one mailer: its sending is what the server refuses.
        patched.setattr(mailer, "send", RefusingWelcomes(mailer.send))
        customer = shop.customer("grace@example.com")
        user_id = user_id_of(client, customer)
        order = place_order(client, shop, customer)
        container.dispatcher().run_until_idle()
        # Every retry of the welcome fails, until its delivery is given up.
        for _ in range(container.settings().events_max_attempts - 1):
            assert set_due(container, "user", WELCOME, LONG_AGO, user_id) == 1
            container.dispatcher().run_until_idle()
        set_due(container, "order", CONFIRMATION, LONG_AGO, order["id"])
        container.dispatcher().run_until_idle()

    assert delivery_column(container, "user", "status", WELCOME, user_id) == "dead"
    assert "MailNotSent" in last_error(container, "user", WELCOME, user_id)
    assert mailbox(folder)["grace@example.com"] == ["order-confirmation"]


def cancel(client: FlaskClient, order: dict[str, Any], headers: dict[str, str]) -> None:
    response = client.post(f"{ORDERS}/{order['id']}/cancel", headers=headers)
    assert response.status_code == 200, response.json


def test_a_cancelled_order_mails_its_buyer_one_notice_in_their_own_name(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, folder: Path
) -> None:
    name = "Zoë Ørsted-Łukasiewicz"
    body = {"email": "zoe@example.com", "password": "correct horse", "name": name}
    assert client.post("/api/v1/users", json=body).status_code == 201
    zoe = shop.bearer("zoe@example.com", "correct horse")
    order = place_order(client, shop, zoe)
    cancel(client, order, zoe)
    cancel(client, order, zoe)  # a repeated cancel publishes nothing, so mails nothing

    container.dispatcher().run_until_idle()

    assert mailbox(folder)["zoe@example.com"] == ["order-cancellation", "order-confirmation", "welcome"]
    (file,) = folder.glob("*.order-cancellation*.eml")
    raw = file.read_bytes()
    headers = raw.split(b"\n\n", 1)[0]
    assert headers.isascii(), "header text beyond ASCII goes out as RFC 2047 encoded words"
    to_header = next(line for line in headers.splitlines() if line.startswith(b"To:"))
    assert b"=?utf-8?" in to_header, to_header
    notice = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(notice, EmailMessage)
    assert notice["To"].addresses[0].display_name == name
    assert notice["Subject"] == f"Your modular-shop order {order['id']} is cancelled"
    assert notice.get_content().startswith(
        f"Hello {name},\n\nyour order {order['id']} has been cancelled as you asked."
    )


def test_an_order_an_administrator_cancelled_is_notified_as_the_shops_doing(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, folder: Path
) -> None:
    customer = shop.customer("ada@example.com")
    order = place_order(client, shop, customer)
    cancel(client, order, shop.admin())

    container.dispatcher().run_until_idle()

    (notice,) = [message for message in mails(folder) if kind_of(message) == "order-cancellation"]
    assert notice["To"].addresses[0].addr_spec == "ada@example.com"
    assert f"your order {order['id']} has been cancelled by the shop." in notice.get_content()


def test_a_redelivered_cancellation_mails_nothing_more(
    client: FlaskClient, shop: Shop, container: ApplicationContainer, folder: Path
) -> None:
    customer = shop.customer()
    order = place_order(client, shop, customer)
    cancel(client, order, customer)
    container.dispatcher().run_until_idle()
    before = {file.name: file.read_bytes() for file in folder.iterdir()}
    assert sorted(kind_of(message) for message in mails(folder)).count("order-cancellation") == 1

    # As if the process died before the completion of both order mails' deliveries was recorded.
    assert set_due(container, "order", CONFIRMATION, LONG_AGO, order["id"]) == 2
    assert container.dispatcher().run_until_idle() == 2

    assert {file.name: file.read_bytes() for file in folder.iterdir()} == before
