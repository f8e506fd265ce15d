"""The notification context's adapters on real things: its repositories and inbox on SQLite
(migrated by its own history), the file mailer on a real folder, the SMTP mailer against a
real SMTP server (aiosmtpd) on a local port, and the container's subscribers end to end."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator, MutableMapping
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import ValidationError
from structlog.testing import capture_logs

from app.config import Settings
from contexts.notification.adapters import mailers, orm
from contexts.notification.adapters.mailers import (
    FileMailer,
    SmtpEndpoint,
    SmtpMailer,
    file_name_for,
    mailer_from_settings,
)
from contexts.notification.adapters.unit_of_work import SqlAlchemyNotificationUnitOfWork
from contexts.notification.application.ports import MailNotSent
from contexts.notification.container import NotificationContainer
from contexts.notification.domain import messages
from contexts.notification.domain.model import Mail, MailKind, Recipient, SentMail
from contexts.order.events import OrderedLine, OrderPlaced
from contexts.user.events import UserRegistered
from infrastructure.db.database import Database
from infrastructure.db.migrations import upgrade
from infrastructure.events.delivery import Delivery
from infrastructure.events.inbox import AlreadyHandled, Inbox
from tests.conftest import Backend
from tests.round_trips import counted

MIGRATIONS = Path(__file__).resolve().parents[4] / "contexts" / "notification" / "migrations"
SENDER = "modular-shop <shop@localhost>"
ZOE = Recipient(user_id=uuid.uuid4(), email="zoe@example.com", name="Zoë Ünal")
RECIPIENTS = "notification.recipients"
WELCOME = "notification.welcome_email"
CONFIRMATION = "notification.order_confirmation_email"


@pytest.fixture
def database(tmp_path: Path, backend: Backend) -> Iterator[Database]:
    database = backend.database("notification", tmp_path)
    upgrade(database, MIGRATIONS, "notification_alembic_version")
    yield database
    database.dispose()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox(orm.INBOX)


def uow_on(
    database: Database, inbox: Inbox, *, write: bool = True, delivery: Delivery | None = None
) -> SqlAlchemyNotificationUnitOfWork:
    return SqlAlchemyNotificationUnitOfWork(database, inbox=inbox, write=write, delivery=delivery)


def a_mail(text: str = "Hello Zoë,\n\n3 × 2.50 EUR = 7.50 EUR\n") -> Mail:
    return Mail(
        message_id=messages.message_id(uuid.uuid4(), MailKind.WELCOME),
        to_address=ZOE.email,
        to_name=ZOE.name,
        subject="Grüße from modular-shop",
        text=text,
    )


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def assert_is(message: EmailMessage, mail: Mail) -> None:
    assert message["Message-ID"] == mail.message_id
    assert message["From"] == SENDER
    assert message["To"].addresses[0].display_name == mail.to_name
    assert message["To"].addresses[0].addr_spec == mail.to_address
    assert message["Subject"] == mail.subject
    sent = parsedate_to_datetime(message["Date"])
    assert abs((datetime.now(timezone.utc) - sent).total_seconds()) < 60
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    # SMTP carries lines ended by CRLF; the text is the same.
    assert message.get_content().replace("\r\n", "\n") == mail.text


# --- repositories and the unit of work -------------------------------------------------------


def test_a_recipient_is_stored_read_back_and_replaced_on_save(database: Database, inbox: Inbox) -> None:
    with uow_on(database, inbox) as uow:
        uow.recipients.save(ZOE)
        uow.commit()
    moved = Recipient(user_id=ZOE.user_id, email="zoe@elsewhere.example", name="Zoë Ü.")

    with uow_on(database, inbox) as uow:
        assert uow.recipients.get(ZOE.user_id) == ZOE
        uow.recipients.save(moved)
        uow.commit()

    with uow_on(database, inbox, write=False) as uow:
        assert uow.recipients.get(ZOE.user_id) == moved
        assert uow.recipients.get(uuid.uuid4()) is None


def test_sent_mail_is_stored_and_read_back_exactly(database: Database, inbox: Inbox) -> None:
    event_id = uuid.uuid4()
    sent = SentMail(
        message_id=messages.message_id(event_id, MailKind.ORDER_CONFIRMATION),
        event_id=event_id,
        kind=MailKind.ORDER_CONFIRMATION,
        to_address=ZOE.email,
        subject="Your modular-shop order",
        sent_at=datetime(2026, 11, 30, 9, 15, 42, 123456, tzinfo=timezone.utc),
    )
    with uow_on(database, inbox) as uow:
        uow.sent.add(sent)
        uow.commit()

    with uow_on(database, inbox, write=False) as uow:
        assert uow.sent.get(sent.message_id) == sent
        assert uow.sent.get("<unknown@modular-shop>") is None


def test_nothing_is_stored_without_a_commit(database: Database, inbox: Inbox) -> None:
    with uow_on(database, inbox) as uow:
        uow.recipients.save(ZOE)

    with uow_on(database, inbox, write=False) as uow:
        assert uow.recipients.get(ZOE.user_id) is None


def test_a_commit_for_a_delivery_marks_the_event_handled_once(database: Database, inbox: Inbox) -> None:
    delivery = Delivery(WELCOME, uuid.uuid4())
    with uow_on(database, inbox, write=False, delivery=delivery) as uow:
        assert not uow.already_handled()
    with uow_on(database, inbox, delivery=delivery) as uow:
        uow.recipients.save(ZOE)
        uow.commit()
    with uow_on(database, inbox, write=False, delivery=delivery) as uow:
        assert uow.already_handled()
    with uow_on(database, inbox, delivery=delivery) as uow, pytest.raises(AlreadyHandled):
        uow.commit()

    with uow_on(database, inbox, write=False, delivery=Delivery(CONFIRMATION, delivery.event_id)) as uow:
        assert not uow.already_handled()
    with uow_on(database, inbox, write=False) as uow:
        assert not uow.already_handled()


def test_a_unit_of_work_made_without_the_delivery_records_nothing(database: Database, inbox: Inbox) -> None:
    delivery = Delivery(WELCOME, uuid.uuid4())

    with uow_on(database, inbox) as uow:
        uow.recipients.save(ZOE)
        uow.commit()
    with uow_on(database, inbox) as uow:
        uow.commit()

    with uow_on(database, inbox, write=False, delivery=delivery) as uow:
        assert not uow.already_handled()
        assert uow.recipient_unless_handled(ZOE.user_id) == (False, ZOE)
    with uow_on(database, inbox, delivery=delivery) as uow:
        uow.commit()
    with uow_on(database, inbox, write=False, delivery=delivery) as uow:
        assert uow.already_handled()
        assert uow.recipient_unless_handled(ZOE.user_id)[0]


def test_a_unit_of_work_without_an_inbox_refuses_a_delivery(database: Database) -> None:
    with pytest.raises(ValueError, match=WELCOME):
        SqlAlchemyNotificationUnitOfWork(database, delivery=Delivery(WELCOME, uuid.uuid4()))


# --- FileMailer ------------------------------------------------------------------------------


def test_the_file_mailer_writes_a_parseable_mime_message(tmp_path: Path) -> None:
    folder = tmp_path / "mail" / "not-yet-there"
    mail = a_mail()

    FileMailer(folder, SENDER).send(mail)

    (file,) = folder.iterdir()
    assert file.name == file_name_for(mail.message_id)
    assert file.suffix == ".eml"
    assert_is(parse(file.read_bytes()), mail)


@pytest.fixture
def mail_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MutableMapping[str, Any]]]:
    """What the mailers log. Their module logger may already be cached by an earlier test with
    the app's processors (``cache_logger_on_first_use``), which ``capture_logs`` cannot replace:
    a fresh logger, first used under the capture, sees only the capture."""
    with capture_logs() as logs:
        monkeypatch.setattr(mailers, "logger", structlog.get_logger(mailers.__name__))
        yield logs


def test_each_written_mail_is_one_info_line_naming_its_file_not_its_address_or_subject(
    tmp_path: Path, mail_logs: list[MutableMapping[str, Any]]
) -> None:
    mail = a_mail()

    FileMailer(tmp_path, SENDER).send(mail)

    assert mail_logs == [
        {
            "event": "mail.written",
            "log_level": "info",
            "path": str(tmp_path / file_name_for(mail.message_id)),
            "message_id": mail.message_id,
        }
    ]


@pytest.mark.parametrize(
    ("sender", "name", "subject"),
    [
        ("Grüße-Shop <shop@localhost>", 'Zoë, "the" Ünal', "Grüße von modular-shop " * 6),
        ("Sales (EU) <sales@localhost>", "O'Brien; Jr. <no address>", "Your order " * 20),
        ("shop@localhost", "", "x" * 300),
    ],
)
def test_names_and_subjects_that_need_quoting_or_encoding_read_back_exactly(
    tmp_path: Path, sender: str, name: str, subject: str
) -> None:
    mail = replace(a_mail(), to_name=name, subject=subject)

    FileMailer(tmp_path, sender).send(mail)

    (file,) = tmp_path.iterdir()
    message = parse(file.read_bytes())
    assert message["From"].addresses == policy.default.header_factory("From", sender).addresses
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == (name, mail.to_address)
    assert message["Subject"] == subject
    assert message.get_content() == mail.text


@pytest.mark.parametrize("field", ["to_address", "message_id"])
def test_a_header_value_that_breaks_a_line_is_refused_and_nothing_is_written(tmp_path: Path, field: str) -> None:
    """A line break in a header value would end the header and start one the value chose (the
    modern ``email`` API refuses it by itself; the mailers' compat32 composition must too). The
    user-chosen texts, name and subject, are not refused but cleaned (``header_text``)."""
    mail = replace(a_mail(), **{field: "Zoë\r\nBcc: everyone@example.com"})

    with pytest.raises(ValueError):
        FileMailer(tmp_path, SENDER).send(mail)

    assert list(tmp_path.iterdir()) == []


def test_the_same_message_sent_twice_is_one_file_with_the_last_content(tmp_path: Path) -> None:
    mailer = FileMailer(tmp_path, SENDER)
    mail = a_mail()

    mailer.send(mail)
    mailer.send(mail)
    mailer.send(a_mail())

    files = sorted(tmp_path.iterdir())
    assert len(files) == 2, "one file per message id, and no temporary file left behind"
    assert [f.name for f in files if f.name == file_name_for(mail.message_id)]


def test_file_names_are_safe_whatever_the_message_id() -> None:
    assert file_name_for("<../../etc/passwd@x>") == ".._.._etc_passwd_x.eml"
    event_id = uuid.uuid4()
    assert file_name_for(f"<{event_id}.welcome@modular-shop>") == f"{event_id}.welcome_modular-shop.eml"


def test_a_folder_that_cannot_be_written_raises_mail_not_sent(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    with pytest.raises(MailNotSent):
        FileMailer(blocker / "mail", SENDER).send(a_mail())


# --- SMTP URLs and the choice of mailer ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "security", "port"),
    [
        ("smtp://mail.example.com", "plain", 25),
        ("smtp+starttls://mail.example.com", "starttls", 587),
        ("smtps://mail.example.com", "tls", 465),
        ("smtps://mail.example.com:2465/", "tls", 2465),
    ],
)
def test_smtp_urls_name_security_and_default_ports(url: str, security: str, port: int) -> None:
    endpoint = SmtpEndpoint.parse(url)

    assert (endpoint.security, endpoint.host, endpoint.port) == (security, "mail.example.com", port)
    assert (endpoint.username, endpoint.password) == (None, None)


def test_smtp_credentials_are_unquoted_and_never_shown() -> None:
    mailer = SmtpMailer("smtp+starttls://shop%40example.com:p%3Ass%2Fw0rd@mail.example.com:2525", SENDER, 5)

    assert mailer.endpoint.username == "shop@example.com"
    assert mailer.endpoint.password == "p:ss/w0rd"
    assert "p:ss" not in repr(mailer) and "p:ss" not in repr(mailer.endpoint)
    assert "mail.example.com:2525" in repr(mailer)


@pytest.mark.parametrize(
    "url",
    ["http://user:secret@mail.example.com", "smtp://user:secret@", "smtp://user:secret@host/path", "smtp://h?x=1"],
)
def test_a_malformed_smtp_url_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        SmtpEndpoint.parse(url)

    assert "secret" not in str(raised.value)


def test_the_settings_choose_smtp_when_a_url_is_given_else_files(tmp_path: Path) -> None:
    files = mailer_from_settings(None, tmp_path / "mail", SENDER, 5)
    smtp = mailer_from_settings("smtp://127.0.0.1:2525", tmp_path / "mail", SENDER, 5)

    assert isinstance(files, FileMailer) and files.folder == tmp_path / "mail"
    assert isinstance(smtp, SmtpMailer) and (smtp.endpoint.host, smtp.endpoint.port) == ("127.0.0.1", 2525)


# --- SmtpMailer against a real SMTP server ---------------------------------------------------


class Collecting:
    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


class Accounts:
    """Accepts only ``shop``/``relay-secret``; remembers who logged in."""

    def __init__(self) -> None:
        self.logins: list[str] = []

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword) and (data.login, data.password) == (b"shop", b"relay-secret"):
            self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[tuple[Collecting, Accounts, int]]:
    handler, accounts, port = Collecting(), Accounts(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, authenticator=accounts, auth_require_tls=False)
    controller.start()
    yield handler, accounts, port
    controller.stop()


def test_plain_smtp_delivers_the_message_to_the_server(smtp_server: tuple[Collecting, Accounts, int]) -> None:
    handler, accounts, port = smtp_server
    mail = a_mail()

    SmtpMailer(f"smtp://127.0.0.1:{port}", SENDER, timeout=5).send(mail)

    (envelope,) = handler.envelopes
    assert envelope.mail_from == "shop@localhost"
    assert envelope.rcpt_tos == [ZOE.email]
    assert isinstance(envelope.original_content, bytes)
    assert_is(parse(envelope.original_content), mail)
    assert accounts.logins == []


def test_each_mail_an_smtp_server_accepted_is_one_info_line_without_personal_data(
    smtp_server: tuple[Collecting, Accounts, int], mail_logs: list[MutableMapping[str, Any]]
) -> None:
    _, _, port = smtp_server
    mail = a_mail()

    SmtpMailer(f"smtp://127.0.0.1:{port}", SENDER, timeout=5).send(mail)

    assert mail_logs == [
        {
            "event": "mail.sent",
            "log_level": "info",
            "server": f"127.0.0.1:{port}",
            "message_id": mail.message_id,
        }
    ]


def test_smtp_with_credentials_logs_in_before_sending(smtp_server: tuple[Collecting, Accounts, int]) -> None:
    handler, accounts, port = smtp_server

    SmtpMailer(f"smtp://shop:relay-secret@127.0.0.1:{port}", SENDER, timeout=5).send(a_mail())

    assert accounts.logins == ["shop"]
    assert len(handler.envelopes) == 1


def test_refused_credentials_raise_and_send_nothing(smtp_server: tuple[Collecting, Accounts, int]) -> None:
    handler, _, port = smtp_server

    with pytest.raises(MailNotSent):
        SmtpMailer(f"smtp://shop:wrong@127.0.0.1:{port}", SENDER, timeout=5).send(a_mail())

    assert handler.envelopes == []


def test_an_unreachable_smtp_server_raises_at_once() -> None:
    started = time.monotonic()

    with pytest.raises(MailNotSent):
        SmtpMailer(f"smtp://127.0.0.1:{free_port()}", SENDER, timeout=2).send(a_mail())

    assert time.monotonic() - started < 2


def test_a_server_that_never_answers_raises_within_the_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()

        with pytest.raises(MailNotSent):
            SmtpMailer(f"smtp://127.0.0.1:{silent.getsockname()[1]}", SENDER, timeout=0.5).send(a_mail())

    assert time.monotonic() - started < 3


@pytest.fixture
def certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, trusted the way an operator trusts a private
    CA: through ``SSL_CERT_FILE``, read when the mailer builds its TLS context."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return cert, key


def tls_server(
    certificate: tuple[Path, Path], *, implicit: bool, authenticator: Accounts | None = None
) -> tuple[Collecting, Controller]:
    """A server speaking TLS from the start (``implicit``) or requiring STARTTLS."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    handler = Collecting()
    tls: dict[str, Any] = {"ssl_context": context} if implicit else {"tls_context": context, "require_starttls": True}
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), authenticator=authenticator, **tls)
    controller.start()
    return handler, controller


def test_starttls_upgrades_the_connection_before_logging_in(certificate: tuple[Path, Path]) -> None:
    accounts = Accounts()
    handler, controller = tls_server(certificate, implicit=False, authenticator=accounts)
    try:
        SmtpMailer(f"smtp+starttls://shop:relay-secret@127.0.0.1:{controller.port}", SENDER, timeout=5).send(a_mail())
        with pytest.raises(MailNotSent):
            SmtpMailer(f"smtp://127.0.0.1:{controller.port}", SENDER, timeout=5).send(a_mail())
    finally:
        controller.stop()

    assert accounts.logins == ["shop"]
    assert len(handler.envelopes) == 1


def test_smtps_speaks_tls_from_the_first_byte(certificate: tuple[Path, Path]) -> None:
    handler, controller = tls_server(certificate, implicit=True)
    try:
        SmtpMailer(f"smtps://127.0.0.1:{controller.port}", SENDER, timeout=5).send(mail := a_mail())
    finally:
        controller.stop()

    (envelope,) = handler.envelopes
    assert isinstance(envelope.original_content, bytes)
    assert_is(parse(envelope.original_content), mail)


def test_an_untrusted_certificate_is_refused(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    handler, controller = tls_server(certificate, implicit=True)
    try:
        with pytest.raises(MailNotSent):
            SmtpMailer(f"smtps://127.0.0.1:{controller.port}", SENDER, timeout=5).send(a_mail())
    finally:
        controller.stop()

    assert handler.envelopes == []


# --- the container's subscribers, on the real database and a real folder ---------------------


@pytest.fixture
def notification(database: Database, tmp_path: Path) -> Iterator[NotificationContainer]:
    container = NotificationContainer(database=database, mailer=FileMailer(tmp_path / "mail", SENDER))
    container.check_dependencies()
    yield container


def zoe_registered() -> UserRegistered:
    return UserRegistered(user_id=ZOE.user_id, email=ZOE.email, name=ZOE.name)


def zoe_ordered() -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        user_id=ZOE.user_id,
        lines=(OrderedLine(uuid.uuid4(), 3, Decimal("2.50"), "MUG-1", "Blue mug"),),
        total=Decimal("7.50"),
        currency="EUR",
    )


def test_the_container_subscribers_mail_once_per_event(notification: NotificationContainer, tmp_path: Path) -> None:
    registration, order_event = uuid.uuid4(), uuid.uuid4()
    registered, placed = zoe_registered(), zoe_ordered()

    for attempt in range(2):
        if attempt:
            with pytest.raises(AlreadyHandled):
                notification.when_user_registered_remember_recipient(registered, Delivery(RECIPIENTS, registration))
        else:
            notification.when_user_registered_remember_recipient(registered, Delivery(RECIPIENTS, registration))
        notification.when_user_registered_send_welcome(registered, Delivery(WELCOME, registration))
        notification.when_order_placed_send_confirmation(placed, Delivery(CONFIRMATION, order_event))

    files = sorted((tmp_path / "mail").iterdir())
    assert [file.name for file in files] == sorted(
        [
            file_name_for(messages.message_id(registration, MailKind.WELCOME)),
            file_name_for(messages.message_id(order_event, MailKind.ORDER_CONFIRMATION)),
        ]
    )
    confirmation_file = file_name_for(messages.message_id(order_event, MailKind.ORDER_CONFIRMATION))
    confirmation = parse((tmp_path / "mail" / confirmation_file).read_bytes())
    assert "Blue mug (MUG-1): 3 × 2.50 EUR = 7.50 EUR" in confirmation.get_content()
    with notification.uow(write=False) as uow:
        assert uow.recipients.get(ZOE.user_id) == ZOE
        recorded = uow.sent.get(messages.message_id(order_event, MailKind.ORDER_CONFIRMATION))
        assert recorded is not None and recorded.event_id == order_event


class RefusingWelcomes:
    """A mail server that rejects every welcome and takes every other message."""

    def __init__(self) -> None:
        self.sent: list[Mail] = []

    def send(self, mail: Mail) -> None:
        if ".welcome@" in mail.message_id:
            raise MailNotSent("550 5.7.1 message refused")
        self.sent.append(mail)


def test_a_welcome_that_keeps_failing_does_not_hold_back_the_confirmation(database: Database) -> None:
    mailer = RefusingWelcomes()
    notification = NotificationContainer(database=database, mailer=mailer)
    registration, order_event = uuid.uuid4(), uuid.uuid4()
    notification.when_user_registered_remember_recipient(zoe_registered(), Delivery(RECIPIENTS, registration))
    for _ in range(3):
        with pytest.raises(MailNotSent):
            notification.when_user_registered_send_welcome(zoe_registered(), Delivery(WELCOME, registration))

    notification.when_order_placed_send_confirmation(zoe_ordered(), Delivery(CONFIRMATION, order_event))

    assert [(mail.message_id, mail.to_address) for mail in mailer.sent] == [
        (messages.message_id(order_event, MailKind.ORDER_CONFIRMATION), ZOE.email)
    ]
    with notification.uow(write=False) as uow:
        assert uow.sent.get(messages.message_id(registration, MailKind.WELCOME)) is None
        assert uow.sent.get(messages.message_id(order_event, MailKind.ORDER_CONFIRMATION)) is not None


# --- hostile text in headers -------------------------------------------------------------------

HOSTILE_NAMES = [
    "Eve\r\nBcc: victim@example.com",
    "Eve\nSubject: you won",
    "Eve\u2028Bcc: victim@example.com",
    "Eve\u2029X-Injected: yes",
    "Eve\u0085Bcc: victim@example.com",
    "Eve\u202egpj.exe",
    "Eve\x0bvertical\x0cfeed\x1cseparators",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_a_hostile_name_can_neither_break_nor_inject_a_header(tmp_path: Path, name: str) -> None:
    """Before: each of these made the welcome mail fail (a dead letter), for ever."""
    recipient = Recipient(user_id=uuid.uuid4(), email="eve@example.com", name=name)
    mail = messages.welcome(uuid.uuid4(), recipient)
    mailer = FileMailer(tmp_path, SENDER)

    mailer.send(mail)

    raw = (tmp_path / file_name_for(mail.message_id)).read_bytes()
    message = parse(raw)
    assert sorted(message.keys()) == sorted(
        ["From", "To", "Subject", "Date", "Message-ID", "Content-Type", "Content-Transfer-Encoding", "MIME-Version"]
    )
    assert [address.addr_spec for address in message["To"].addresses] == ["eve@example.com"]
    assert message["To"].addresses[0].display_name.startswith("Eve")
    assert message["Subject"].startswith("Welcome to modular-shop, Eve")
    assert "\u202e" not in message["Subject"]
    header_block = raw.split(b"\n\n", 1)[0]
    assert header_block.isascii(), header_block  # what is not ASCII went in encoded


@pytest.mark.parametrize(
    "sender",
    ["shop <shop@example.com>\r\nBcc: everyone@example.com", "shop <shop@example.com>\u2028Bcc: x@example.com",
     "shop <a@example.com>, other <b@example.com>", "nonsense", "Shop <shöp@example.com>"],
    ids=repr,
)  # fmt: skip
def test_a_mail_from_that_would_break_every_mail_stops_start_up_naming_it(tmp_path: Path, sender: str) -> None:
    """The operator's sibling of a hostile name: before, every mail failed at its first delivery."""
    with pytest.raises(ValidationError) as raised:
        Settings(instance_path=tmp_path, mail_from=sender)
    assert "mail_from" in str(raised.value)


@pytest.mark.parametrize(
    "sender", [SENDER, "shop@example.com", '"Shop, Inc." <shop@example.com>', "Shöp <s@example.com>"]
)
def test_an_ordinary_mail_from_is_accepted(tmp_path: Path, sender: str) -> None:
    assert Settings(instance_path=tmp_path, mail_from=sender).mail_from == sender


def test_a_confirmation_is_checked_for_in_one_statement_outside_any_transaction(
    notification: NotificationContainer, database: Database, tmp_path: Path
) -> None:
    """Before sending, whether the event was answered and to whom: one read on its own, not a
    transaction of two (on PostgreSQL a BEGIN, two SELECTs and a ROLLBACK); then the record
    and the inbox row: on PostgreSQL one statement on its own (the inbox row in a WITH), on
    SQLite one write transaction. A repeat reads once and sends nothing."""
    notification.when_user_registered_remember_recipient(zoe_registered(), Delivery(RECIPIENTS, uuid.uuid4()))
    placed, order_event = zoe_ordered(), uuid.uuid4()

    with counted() as first:
        notification.when_order_placed_send_confirmation(placed, Delivery(CONFIRMATION, order_event))
    with counted() as repeat:
        notification.when_order_placed_send_confirmation(placed, Delivery(CONFIRMATION, order_event))

    if database.engine.dialect.name == "postgresql":
        assert (first.kinds(), first.alone, first.transactions) == (["SELECT", "WITH"], 2, 0)
    else:
        assert (first.kinds(), first.alone, first.transactions) == (["SELECT", "INSERT", "INSERT"], 1, 1)
    assert (repeat.kinds(), repeat.alone, repeat.transactions) == (["SELECT"], 1, 0)
    assert len(list((tmp_path / "mail").iterdir())) == 1
