"""Settings from the environment (and a ``.env`` file), validated once at start-up.

The CLI and the server read the same settings, so they share databases and signing secret
when run from the same folder. A bad value stops start-up with an error naming the setting.

The settings come in groups, a module each (``database``, ``web``, ``observability``,
``events``, ``mail``, ``services``, ``auth``): :class:`Settings` is all of them, in that order, which is the order of
``.env.example`` and the order in which they are validated (a group's validators may read the
groups before it). The environment variables are the groups' fields, upper-cased, as ever.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import version
from typing import Any

from pydantic import SecretStr, ValidationError, ValidationInfo, field_validator

from app.config.auth import AuthSettings
from app.config.base import long_enough, split_list
from app.config.database import DatabaseSettings
from app.config.events import SERVER_DELIVERY_WORKERS, SQLITE_DELIVERY_WORKERS, EventsSettings
from app.config.mail import MailSettings
from app.config.observability import ObservabilitySettings
from app.config.services import (
    DEFAULT_REMOTE_IDLE_SECONDS,
    SERVICE_URLS,
    ServicesSettings,
    check_service_url,
    context_of,
    hosted_contexts,
    named_contexts,
)
from app.config.web import WebSettings
from infrastructure.remote.options import KEEPALIVE_MARGIN_SECONDS, RemoteOptions
from infrastructure.validation_messages import message_for

__all__ = [
    "GROUPS",
    "SERVER_DELIVERY_WORKERS",
    "DeliverySettings",
    "Settings",
    "hosted_contexts",
    "named_contexts",
    "read_settings",
    "settings_problems",
    "split_list",
]

# The groups in the order of their fields (pydantic orders a class's fields from its last base to its first).
GROUPS = (
    DatabaseSettings,
    WebSettings,
    ObservabilitySettings,
    EventsSettings,
    MailSettings,
    ServicesSettings,
    AuthSettings,
)


class Settings(
    AuthSettings, ServicesSettings, MailSettings, EventsSettings, ObservabilitySettings, WebSettings, DatabaseSettings
):
    """Every setting: the groups' fields, and here what reads more than one group."""

    def delivery_workers(self) -> int:
        """``EVENTS_WORKERS``, else its default for the databases of the contexts served here.

        On SQLite a file has one writer at a time, so deliveries beyond a few only queue for its
        write turn. On PostgreSQL a delivery mostly waits for the server's answers (a handful of
        round trips and the commit's WAL flush), which more workers overlap: under the
        benchmark's saturating orders, 4 workers per process let the deliveries fall seconds
        behind where 8 kept up (bench/README.md, order-e2e, fourth pass).
        """
        if self.events_workers is not None:
            return self.events_workers
        on_a_server = any(not self.database_url_for(context).startswith("sqlite") for context in self.hosted_contexts())
        return SERVER_DELIVERY_WORKERS if on_a_server else SQLITE_DELIVERY_WORKERS

    def remote_options(self) -> RemoteOptions:
        return RemoteOptions(
            connect_timeout_seconds=self.remote_connect_timeout_seconds,
            read_timeout_seconds=self.remote_read_timeout_seconds,
            attempts=self.remote_attempts,
            breaker_failures=self.remote_breaker_failures,
            breaker_reset_seconds=self.remote_breaker_reset_seconds,
            idle_connection_seconds=self.remote_idle_seconds(),
            ca_file=str(self.remote_ca_file) if self.remote_ca_file else None,
            user_agent=f"modular-shop/{_shop_version()} ({','.join(self.hosted_contexts())})",
        )

    def remote_idle_seconds(self) -> float:
        """``REMOTE_IDLE_CONNECTION_SECONDS``, else 4 s, or less when the shop's own
        ``WEB_KEEPALIVE_SECONDS`` (which its services share unless told otherwise) is shorter: a
        connection reused as the target closes it fails the call. Its own setting rather than
        derived alone, because a load balancer before the target may close idle connections
        sooner than the target does."""
        if self.remote_idle_connection_seconds is not None:
            return self.remote_idle_connection_seconds
        return min(DEFAULT_REMOTE_IDLE_SECONDS, max(0.0, self.web_keepalive_seconds - KEEPALIVE_MARGIN_SECONDS))


class DeliverySettings(Settings):
    """The settings of the commands that only read and steer event delivery (``shop events
    status|dead|retry``): the databases and the broker. The secrets and URLs that calls between
    services need are checked as usual when given, but not required, so that an operator can
    look at a process's deliveries with little more than its SERVED_CONTEXTS, database and
    broker settings."""

    @field_validator(*SERVICE_URLS, check_fields=False)
    @classmethod
    def _service_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return check_service_url(context_of(info), (), value, info)

    @field_validator("service_token")
    @classmethod
    def _service_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return long_enough(value) if value is not None and value.get_secret_value() else None

    @field_validator("token_secret")
    @classmethod
    def _token_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return long_enough(value) if value is not None and value.get_secret_value() else None


@cache
def _shop_version() -> str:
    """The installed shop's version, read once: it names the shop in calls to other services."""
    return version("modular-shop")


def read_settings(overrides: Mapping[str, Any] | None = None, *, kind: type[Settings] = Settings) -> Settings:
    """The settings from the environment and ``.env``, with ``overrides`` (tests) on top;
    ``kind``: :class:`DeliverySettings` for the commands that need only part of them."""
    return kind(**dict(overrides or {}))


def settings_problems(error: ValidationError) -> str:
    """One line per bad setting, named as its environment variable and worded as the API words
    invalid fields: ``DATABASE_POOL_SIZE: must be a whole number``. The settings hide input
    values, so no secret is quoted."""
    lines = []
    for problem in error.errors(include_url=False, include_input=False):
        name = ".".join(map(str, problem["loc"])).upper()
        message = message_for(problem)
        lines.append(f"  {name}: {message}" if name else f"  {message}")
    return "\n".join(lines)
