"""The shop's mail: its sender, and the SMTP server or the folder it goes to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator

from app.config.base import SettingsGroup
from contexts.notification.adapters.mailers import SmtpEndpoint, check_sender


class MailSettings(SettingsGroup):
    mail_from: Annotated[str, Field(min_length=3, max_length=200)] = Field(
        "modular-shop <shop@localhost>", description="sender of the shop's mail: one ASCII address, optionally named"
    )
    smtp_url: SecretStr | None = Field(
        None, description="smtp://, smtp+starttls:// or smtps://[user:password@]host[:port]; unset = .eml files"
    )
    smtp_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = Field(
        10.0, description="how long a conversation with the SMTP server may take"
    )

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        SmtpEndpoint.parse(value.get_secret_value())  # its errors never quote the URL's password
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from(cls, value: str) -> str:
        check_sender(value)
        return value

    def smtp_url_value(self) -> str | None:
        return self.smtp_url.get_secret_value() if self.smtp_url else None

    def mail_folder(self) -> Path:
        """Where the embedded mailer writes its ``.eml`` files when no SMTP server is set."""
        return self.instance_path.resolve() / "mail"
