"""Mailers: ``.eml`` files in a folder (development, tests) or a real SMTP server.

Both build the same MIME message; both raise :class:`MailNotSent` when they cannot hand it
on, so the dispatcher retries the delivery later.
"""

from __future__ import annotations

import contextlib
import email.policy
import functools
import os
import re
import smtplib
import ssl
import tempfile
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

import structlog

from contexts.notification.application.ports import Mailer, MailNotSent
from contexts.notification.domain.model import Mail

Security = Literal["plain", "starttls", "tls"]
SCHEMES: dict[str, tuple[Security, int]] = {
    "smtp": ("plain", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}
_UNSAFE_IN_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]")
logger = structlog.get_logger(__name__)
# The line length RFC 5322 recommends, to which the ``email`` package folds headers.
_LINE_LENGTH = 78


def header_text(text: str) -> str:
    """User-chosen text as one header line can carry it: every line break and other control
    character becomes a space, invisible formatting (bidi overrides, zero-width characters) is
    dropped; the email package then encodes what is not ASCII (RFC 2047) and quotes what needs it.

    The text rules refuse these characters at registration; a name stored before they did, or
    arriving from an older event, still gets its mail instead of making every attempt fail."""
    kept = []
    for character in text:
        category = unicodedata.category(character)
        if category in ("Cc", "Zl", "Zp"):
            kept.append(" ")
        elif category != "Cf":
            kept.append(character)
    return "".join(kept)


def check_sender(sender: str) -> None:
    """Raise ``ValueError`` unless ``sender`` makes a From header of one ASCII address, such as
    ``modular-shop <shop@example.com>``: a line break or a second address in it would make every
    mail fail (or go out from someone else), and only at the first delivery."""
    message = EmailMessage()
    try:
        message["From"] = sender
    except ValueError as error:
        raise ValueError("must be one line, like 'modular-shop <shop@example.com>'") from error
    header = message["From"]
    if len(header.addresses) != 1 or header.defects:
        raise ValueError("must be one address with an ASCII local part, like 'modular-shop <shop@example.com>'")


TransferEncoding = Literal["8bit", "quoted-printable"]


def _utf8(body_encoding: int | None) -> Charset:
    charset = Charset("utf-8")
    # None: the text as it is (8bit, or 7bit when ASCII), as email.charset.CHARSETS spells it.
    charset.body_encoding = body_encoding  # type: ignore[assignment]  # the stub allows only int
    return charset


_CHARSETS: dict[TransferEncoding, Charset] = {"8bit": _utf8(None), "quoted-printable": _utf8(QP)}


def mime_message(mail: Mail, sender: str, *, transfer_encoding: TransferEncoding) -> Message:
    """The message as MIME, through the ``email`` package's compat32 API.

    Not ``EmailMessage`` for each message: its headers are objects parsed back from every value
    set (an address list parsed for ``To``, ``Content-Type`` parameters for ``set_content``),
    1 to 2 ms a message, most of a confirmation's delivery on the shop's own CPU. Here the
    values are made ready to be written: the sender's header once through the modern API (it
    is one for the process), the recipient quoted and a name that is not ASCII as RFC 2047
    words, a subject that is not ASCII or would not fit on its line as such words too (which
    fold without changing it); generating the message then only writes lines. Any parser reads
    the same message (the tests parse it with the modern API). User-chosen text goes through
    :func:`header_text`; like the modern API, the other values are refused if they would break
    a line (and so smuggle in a header of their own).
    """
    for value in (sender, mail.to_address, mail.message_id):
        if "\r" in value or "\n" in value:
            raise ValueError(f"a header value may not break a line: {value!r}")
    name, subject = header_text(mail.to_name), header_text(mail.subject)
    message: Message[str, str | Header] = Message()
    message["MIME-Version"] = "1.0"
    message.set_payload(mail.text, _CHARSETS[transfer_encoding])  # text/plain, charset and encoding
    message["From"] = _from_header(sender)
    message["To"] = formataddr((name, mail.to_address), charset="utf-8")
    message["Subject"] = subject if _fits_as_is("Subject", subject) else Header(subject, "utf-8")
    message["Date"] = format_datetime(datetime.now(timezone.utc))
    message["Message-ID"] = mail.message_id
    return message


@functools.lru_cache(maxsize=8)
def _from_header(sender: str) -> str:
    """The ``From`` value as the modern API writes it (names encoded, comments kept), unfolded."""
    folded = str(email.policy.default.header_factory("From", sender).fold(policy=email.policy.default))
    return folded.partition(":")[2].replace("\n ", " ").strip()


def _fits_as_is(name: str, value: str) -> bool:
    return value.isascii() and len(f"{name}: {value}") <= _LINE_LENGTH


def file_name_for(message_id: str) -> str:
    """``<id.kind@host>`` → ``id.kind_host.eml``: one file per message, whatever its id holds."""
    return _UNSAFE_IN_FILE_NAME.sub("_", message_id.strip("<>")) + ".eml"


class FileMailer:
    """Writes each message to ``<folder>/<message id>.eml``.

    The file appears complete or not at all (written aside, then renamed over), and sending
    the same message again replaces it: a redelivered event leaves one email, not two.
    """

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self._sender = sender

    def send(self, mail: Mail) -> None:
        # 8bit keeps the files readable as text; they never cross a 7-bit mail relay.
        data = mime_message(mail, self._sender, transfer_encoding="8bit").as_bytes()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self.folder / file_name_for(mail.message_id)
            _write_atomically(target, data)
        except OSError as error:
            raise MailNotSent(f"could not write {mail.message_id} into {self.folder}: {error}") from error
        # Where to look for it; not the address nor the subject (a welcome's holds the name), which
        # are personal data a log need not keep. The message id names the mail's kind.
        logger.info("mail.written", path=str(target), message_id=mail.message_id)


def _write_atomically(target: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@dataclass(frozen=True)
class SmtpEndpoint:
    security: Security
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> SmtpEndpoint:
        """``smtp://``, ``smtp+starttls://`` or ``smtps://`` ``[user:password@]host[:port]``.

        Errors never quote the URL: it may hold a password.
        """
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise ValueError(f"an SMTP URL starts with one of {', '.join(f'{s}://' for s in SCHEMES)}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("an SMTP URL has no path, query or fragment")
        if not parts.hostname:
            raise ValueError("an SMTP URL names a host")
        security, default_port = SCHEMES[parts.scheme]
        return cls(
            security=security,
            host=parts.hostname,
            port=parts.port or default_port,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )


class SmtpMailer:
    """Sends through an SMTP server, one connection per message, every step within ``timeout``.

    A server that accepted a message may deliver it twice if the same event is handled again
    (see ``application.subscribers``); the Message-ID stays the same.
    """

    def __init__(self, url: str, sender: str, timeout: float) -> None:
        self.endpoint = SmtpEndpoint.parse(url)
        self._sender = sender
        self._timeout = timeout
        self._tls = ssl.create_default_context()

    def send(self, mail: Mail) -> None:
        # Quoted-printable: the text passes relays that do not announce 8BITMIME.
        message = mime_message(mail, self._sender, transfer_encoding="quoted-printable")
        endpoint = self.endpoint
        try:
            with self._connect() as client:
                if endpoint.security == "starttls":
                    client.starttls(context=self._tls)
                if endpoint.username is not None:
                    client.login(endpoint.username, endpoint.password or "")
                client.send_message(message)
        except (smtplib.SMTPException, OSError) as error:
            raise MailNotSent(f"{self!r} did not accept {mail.message_id}: {error!r}") from error
        # No address nor subject: personal data (see FileMailer.send).
        logger.info("mail.sent", server=f"{endpoint.host}:{endpoint.port}", message_id=mail.message_id)

    def _connect(self) -> smtplib.SMTP:
        endpoint = self.endpoint
        if endpoint.security == "tls":
            return smtplib.SMTP_SSL(endpoint.host, endpoint.port, timeout=self._timeout, context=self._tls)
        return smtplib.SMTP(endpoint.host, endpoint.port, timeout=self._timeout)

    def __repr__(self) -> str:
        endpoint = self.endpoint
        user = f"{endpoint.username}@" if endpoint.username is not None else ""
        return f"SmtpMailer({endpoint.security}, {user}{endpoint.host}:{endpoint.port})"


def mailer_from_settings(smtp_url: str | None, mail_folder: Path, sender: str, timeout: float) -> Mailer:
    """SMTP when a server is configured, else ``.eml`` files in ``mail_folder``."""
    if smtp_url:
        return SmtpMailer(smtp_url, sender, timeout)
    return FileMailer(mail_folder, sender)
