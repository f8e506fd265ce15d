"""Serving apart: which contexts this process serves, and how it reaches the others (RabbitMQ
for events, the other services' URLs and the token they share for calls, and how calls behave).

Declared in this order because the validators read what came before them: SERVED_CONTEXTS, then
the broker and the service URLs, then SERVICE_TOKEN (and, in the auth group after this one,
TOKEN_SECRET)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, create_model, field_validator

from app.config.base import SettingsGroup, long_enough, split_list
from app.registry import CONTEXTS, IDENTITY, callers_of, remotely_callable

# How long a call to another service keeps an idle connection, unless told or the keep-alive is shorter.
DEFAULT_REMOTE_IDLE_SECONDS = 4.0
SERVICE_URLS = tuple(f"{context.name}_service_url" for context in remotely_callable())


class _Placement(SettingsGroup):
    served_contexts: str = Field(
        "",
        description="comma-separated contexts this process serves (`shop serve --contexts`); empty = all of them",
    )
    events_broker_url: SecretStr | None = Field(
        None,
        validate_default=True,
        description="amqp://user:password@host:5672/vhost: RabbitMQ, for events between services",
    )
    events_broker_exchange: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")] = Field(
        "shop.events", description="RabbitMQ: the topic exchange events are published to"
    )
    events_broker_queue_prefix: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")] = (
        Field("shop", description="RabbitMQ: prefix of the subscribers' queues")
    )
    events_broker_retry_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        5.0, description="how long a message its subscriber failed on waits before the next attempt"
    )

    @field_validator("served_contexts")
    @classmethod
    def _served_contexts(cls, value: str) -> str:
        named_contexts(value)
        return value

    @field_validator("events_broker_url")
    @classmethod
    def _broker_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            if serves_a_subset(info):
                raise ValueError(
                    "required: this process serves only some contexts, and events reach the others through RabbitMQ"
                )
            return None
        if urlsplit(value.get_secret_value()).scheme not in ("amqp", "amqps"):
            raise ValueError("must be an amqp:// or amqps:// URL")
        return value


def _service_urls() -> type[_Placement]:
    """``<CONTEXT>_SERVICE_URL`` for every context the registry lets be served apart: declared
    after SERVED_CONTEXTS and the broker and before SERVICE_TOKEN, whose validators read them in
    this order, and for every such context, so that a new one has its setting without a line here."""
    fields: dict[str, Any] = {
        f"{context}_service_url": (
            str | None,
            Field(
                None,
                validate_default=True,
                description=f"base URL of the {context} service, e.g. http://{context}:8000"
                + (", which every bearer token is checked against" if context == IDENTITY else "")
                + f"; unset = {context} runs in process",
            ),
        )
        for context in (entry.name for entry in remotely_callable())
    }
    return create_model("ServiceUrls", __base__=_Placement, __module__=__name__, **fields)


if TYPE_CHECKING:
    _ServiceUrls = _Placement
else:
    _ServiceUrls = _service_urls()


class ServicesSettings(_ServiceUrls):
    service_token: SecretStr | None = Field(
        None,
        validate_default=True,
        description="shared secret (32+ chars) the shop's services present to each other's internal endpoints",
    )
    remote_connect_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        1.0, description="calls to another service: how long connecting may take"
    )
    remote_read_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = Field(
        5.0, description="calls to another service: how long an answer may take; also the budget of a call's retries"
    )
    remote_attempts: Annotated[int, Field(ge=1, le=10)] = Field(
        3, description="attempts of a call to another service that is safe to repeat"
    )
    remote_breaker_failures: Annotated[int, Field(ge=1, le=1000)] = Field(
        5, description="consecutive failures of calls to a service that open its circuit breaker"
    )
    remote_breaker_reset_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        10.0,
        description="how long an open circuit breaker fails calls at once before it lets a trial call through,"
        " unless the service's /readyz (asked at most every 0.5 s) answers first",
    )
    remote_idle_connection_seconds: Annotated[float, Field(ge=0, le=300)] | None = Field(
        None,
        description="calls to another service: a kept-alive connection is dropped once idle this long;"
        " below the target's idle timeout (its WEB_KEEPALIVE_SECONDS) and its load balancer's; 0: none kept;"
        " unset: 4, or less when this deployment's WEB_KEEPALIVE_SECONDS is shorter;"
        " when set, also bounds the idle connections of `shop gateway nginx` to the services",
    )
    remote_ca_file: Path | None = Field(
        None,
        description="calls to https service URLs: a PEM file of the certificate authorities (e.g. an internal"
        " one) their certificates must chain to, instead of the public ones",
    )

    @field_validator(*SERVICE_URLS, check_fields=False)
    @classmethod
    def _service_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        context = context_of(info)
        return check_service_url(context, callers_of(context), value, info)

    @field_validator("service_token")
    @classmethod
    def _service_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            served_apart = [context.name for context in remotely_callable()]
            for context in served_apart:
                if info.data.get(f"{context}_service_url"):
                    raise ValueError(
                        f"required when {context.upper()}_SERVICE_URL is set: the {context} service authenticates"
                        " calls by it"
                    )
            hosted = _hosted(info)
            for context in served_apart:
                callers_elsewhere = [name for name in callers_of(context) if name not in hosted]
                if context in hosted and callers_elsewhere:
                    raise ValueError(
                        f"required: this process serves {context} to {_listed(callers_elsewhere)} served"
                        " elsewhere, on endpoints only the shop's services may call"
                    )
            return None
        return long_enough(value)

    @field_validator("remote_ca_file", mode="before")
    @classmethod
    def _unset_ca_file(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("remote_ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None) -> Path | None:
        """Read at start-up, as each call would: a missing, unreadable or certificate-less
        file is this setting's error now, not every https call's failure later."""
        if value is None:
            return None
        try:
            if not value.exists():
                raise ValueError(f"{value} does not exist")
            if not value.is_file():
                raise ValueError(f"{value} is not a file")
        except OSError as error:  # a folder on the way that cannot be searched
            raise ValueError(f"{value} cannot be read ({error.strerror})") from error
        try:
            ssl.create_default_context(cafile=value)
        except PermissionError as error:
            raise ValueError(f"{value} cannot be read ({error.strerror})") from error
        except (ssl.SSLError, OSError, ValueError) as error:
            raise ValueError(f"{value} holds no PEM certificate that can be read ({error})") from error
        return value

    def service_url_for(self, context: str) -> str | None:
        """``<CONTEXT>_SERVICE_URL``: where the context's published API is served, when apart."""
        url: str | None = getattr(self, f"{context}_service_url", None)
        return url

    def hosted_contexts(self) -> tuple[str, ...]:
        """The contexts this process serves, in the order of ``CONTEXTS``."""
        return hosted_contexts(self.served_contexts)

    def events_broker_url_value(self) -> str | None:
        return self.events_broker_url.get_secret_value() if self.events_broker_url else None

    def service_token_value(self) -> str | None:
        return self.service_token.get_secret_value() if self.service_token else None


def _hosted(info: ValidationInfo) -> tuple[str, ...]:
    """The contexts served, from the settings validated so far (all of them when
    SERVED_CONTEXTS was not valid: its own error says so)."""
    return hosted_contexts(info.data.get("served_contexts", ""))


def check_service_url(context: str, callers: tuple[str, ...], value: str | None, info: ValidationInfo) -> str | None:
    """A ``<CONTEXT>_SERVICE_URL``: required where ``callers`` are served without ``context``;
    a base URL without credentials (SERVICE_TOKEN authenticates the calls), kept without a
    trailing slash."""
    if not value:
        hosted = _hosted(info)
        served_callers = [name for name in callers if name in hosted]
        if context not in hosted and served_callers:
            raise ValueError(f"required: this process serves {_listed(served_callers)} but not {context}")
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host, e.g. http://{context}:8000")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ValueError("must have no credentials, query or fragment: SERVICE_TOKEN authenticates the calls")
    return value.rstrip("/")


def _listed(names: list[str]) -> str:
    """``["a", "b", "c"]`` → ``"a, b and c"``."""
    return " and ".join(filter(None, (", ".join(names[:-1]), names[-1])))


def context_of(info: ValidationInfo) -> str:
    """The context whose ``<CONTEXT>_SERVICE_URL`` is being validated."""
    return str(info.field_name).removesuffix("_service_url")


def serves_a_subset(info: ValidationInfo) -> bool:
    return len(_hosted(info)) < len(CONTEXTS)


def named_contexts(served_contexts: str) -> tuple[str, ...]:
    """The contexts a ``SERVED_CONTEXTS`` value names (``shop serve --contexts``, and each
    upstream of ``shop gateway``), in the order of ``CONTEXTS``; empty: all. ``ValueError``
    naming any unknown one: one reading of a placement for the processes and their gateway."""
    unknown = [name for name in split_list(served_contexts) if name not in CONTEXTS]
    if unknown:
        raise ValueError(f"unknown context {', '.join(unknown)}; the contexts are {', '.join(CONTEXTS)}")
    return hosted_contexts(served_contexts)


def hosted_contexts(served_contexts: str) -> tuple[str, ...]:
    """The contexts a ``SERVED_CONTEXTS`` value names, in the order of ``CONTEXTS``; empty: all."""
    chosen = split_list(served_contexts)
    return tuple(context for context in CONTEXTS if not chosen or context in chosen)
