"""Settings from the environment (and a ``.env`` file), validated once at start-up.

The CLI and the server read the same settings, so they share databases and signing secret
when run from the same folder. A bad value stops start-up with an error naming the setting.
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
from collections.abc import Mapping
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

import limits
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, create_model, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.registry import CONTEXTS, callers_of, remotely_callable
from contexts.notification.adapters.mailers import SmtpEndpoint, check_sender
from infrastructure.auth.tokens import MIN_SECRET_LENGTH
from infrastructure.db.database import PoolOptions, database_url
from infrastructure.logging import LogFormat
from infrastructure.remote.options import KEEPALIVE_MARGIN_SECONDS, RemoteOptions
from infrastructure.validation_messages import message_for

SECRET_FILE = "token-secret"
RATE_LIMIT_STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")
SchemaName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
# EVENTS_WORKERS when unset (see Settings.delivery_workers).
SQLITE_DELIVERY_WORKERS = 4
SERVER_DELIVERY_WORKERS = 8
# How long a call to another service keeps an idle connection, unless told or the keep-alive is shorter.
DEFAULT_REMOTE_IDLE_SECONDS = 4.0
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


def split_list(value: str) -> tuple[str, ...]:
    """``" a, b,,c "`` → ``("a", "b", "c")``: the form of the comma-separated settings."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


class _SettingsBase(BaseSettings):
    # Errors name the setting and what is wrong, never the value: it may be a secret. An empty
    # variable is unset (``SETTING=`` in .env.example or a compose file keeps the default).
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True, env_ignore_empty=True
    )

    instance_path: Path = Field(Path("instance"), description="folder for SQLite files and the generated secret")
    database_url: str | None = Field(None, description="default database of every context")

    @field_validator("database_url", *(f"{context}_database_url" for context in CONTEXTS), check_fields=False)
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        database_url(value)  # its errors never quote the URL's password
        return value


def _context_databases() -> type[_SettingsBase]:
    """Each registered context's own database URL and PostgreSQL schema, ``<CONTEXT>_DATABASE_URL``
    and ``<CONTEXT>_DATABASE_SCHEMA``: declared for every context of the registry, so that a new
    context has its settings without a line here."""
    fields: dict[str, Any] = {}
    for context in CONTEXTS:
        fields[f"{context}_database_url"] = (
            str | None,
            Field(None, description=f"the {context} context's own database URL; unset = DATABASE_URL, else SQLite"),
        )
    # PostgreSQL only: each context's schema, by default the context's name (always quoted, so
    # the reserved words "user" and "order" are fine). Lower case, as unquoted SQL would fold it.
    for context in CONTEXTS:
        fields[f"{context}_database_schema"] = (
            SchemaName | None,
            Field(None, description=f"PostgreSQL: the {context} context's schema; unset = {context}"),
        )
    return create_model("ContextDatabases", __base__=_SettingsBase, __module__=__name__, **fields)


if TYPE_CHECKING:
    _ContextDatabases = _SettingsBase
else:
    _ContextDatabases = _context_databases()


class Settings(_ContextDatabases):
    # The pool holds a worker's steady concurrency (8 request threads + 8 deliveries on a server):
    # a connection beyond the pool is closed when returned, so a pool smaller than that opened
    # and closed server connections all through a busy spell (bench/README.md, "Pool churn").
    database_pool_size: Annotated[int, Field(ge=1, le=1000)] = Field(
        16,
        description="connections a process keeps open to a database server, shared by the contexts on it (not SQLite)",
    )
    database_max_overflow: Annotated[int, Field(ge=0, le=1000)] = Field(
        2, description="connections a process may open to a database server beyond its pool under load"
    )
    database_pool_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = Field(
        30.0, description="how long a request waits for a free connection before it fails"
    )
    database_statement_timeout_ms: Annotated[int, Field(ge=0)] = Field(
        30_000, description="PostgreSQL cancels a statement running longer than this; 0 = never"
    )
    database_connect_timeout_seconds: Annotated[int, Field(ge=1, le=120)] = Field(
        5, description="how long opening a connection to a database server may take"
    )
    # Printable ASCII: PostgreSQL shows at most 63 bytes and replaces anything else with "?".
    database_application_name: Annotated[str, Field(pattern=r"^[ -~]{1,63}$")] = Field(
        "modular-shop", description="the application_name of the shop's connections, as pg_stat_activity shows them"
    )

    token_previous_secrets: SecretStr = Field(
        SecretStr(""),
        description="comma-separated older signing secrets, still accepted for verification during a key rotation",
    )
    token_ttl_seconds: Annotated[int, Field(ge=60, le=30 * 86400)] = Field(
        3600, description="lifetime of a bearer token (60 s to 30 days)"
    )
    token_subject_cache_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(
        30.0,
        description="how long a token's user (do they exist, which role) is remembered; a deletion or"
        " a change of role takes effect within this",
    )

    login_rate_limit_per_account: str = Field(
        "10/minute",
        description="login attempts on one email from one client address, e.g. '10/minute' or '5/minute;20/hour'",
    )
    login_rate_limit_per_address: str = Field("50/minute", description="login attempts per client address")
    registration_rate_limit_per_address: str = Field(
        "5/minute;20/hour", description="registrations (POST /users) per client address"
    )
    ratelimit_storage_url: str | None = Field(
        None, description="where rate-limit counters live, e.g. redis://127.0.0.1:6379/0; in memory if unset"
    )
    ratelimit_key_prefix: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")] = Field(
        "shop", description="prefix of the rate-limit keys in RATELIMIT_STORAGE_URL"
    )

    trusted_proxy_hops: Annotated[int, Field(ge=0, le=10)] = Field(
        0,
        description="reverse proxies in front of the shop that append to X-Forwarded-For; 0 = the header is ignored",
    )
    hsts_seconds: Annotated[int, Field(ge=0, le=2 * 365 * 86400)] = Field(
        0, description="when above 0, Strict-Transport-Security: max-age=N on every HTTPS response"
    )
    cors_allowed_origins: str = Field(
        "", description="comma-separated origins allowed to call the API from a browser; empty = no CORS"
    )

    max_content_length: Annotated[int, Field(ge=1024)] = Field(
        1024 * 1024, description="largest request body in bytes; larger ones get a 413"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: LogFormat | None = Field(
        None, description="json or console; unset: console lines when standard error is a terminal, else JSON"
    )

    argon2_time_cost: Annotated[int, Field(ge=1)] = Field(
        3, description="password hashing cost; hashes made with older values are upgraded at the next login"
    )
    argon2_memory_cost_kib: Annotated[int, Field(ge=8)] = Field(64 * 1024, description="memory of one password hash")
    argon2_parallelism: Annotated[int, Field(ge=1)] = Field(4, description="threads of one password hash")
    password_hashing_concurrency: Annotated[int, Field(ge=1, le=256)] = Field(
        2, description="argon2 hashes and verifications running at once per process; the others wait"
    )
    password_hashing_wait_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        5, description="how long a registration or login waits for a hashing slot before a 503 with Retry-After"
    )

    web_workers: Annotated[int, Field(ge=1, le=64)] = Field(
        4, description="`shop serve --prod`: worker processes (each with its own pools and dispatcher)"
    )
    web_threads: Annotated[int, Field(ge=1, le=256)] = Field(
        8, description="`shop serve --prod`: requests each worker serves at the same time"
    )
    web_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = Field(
        30, description="`shop serve --prod`: a worker silent for this long is killed and replaced"
    )
    web_graceful_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = Field(
        30, description="on SIGTERM, how long workers may finish requests and hand deliveries back"
    )
    web_keepalive_seconds: Annotated[int, Field(ge=0, le=300)] = Field(
        5, description="how long an idle client connection is kept open; behind a load balancer, above its idle timeout"
    )

    events_dispatch_in_web: bool = Field(
        True, description="run the event dispatcher inside `shop serve`; false when `shop events relay` runs apart"
    )
    events_workers: Annotated[int, Field(ge=1, le=64)] | None = Field(
        None,
        description=(
            "deliveries run at the same time per dispatcher; unset: 4 when the contexts it serves are"
            " on SQLite, 8 when any is on PostgreSQL"
        ),
    )
    events_max_attempts: Annotated[int, Field(ge=1, le=100)] = Field(
        8, description="attempts before a delivery becomes a dead letter"
    )
    events_retry_base_seconds: Annotated[float, Field(gt=0)] = Field(
        1.0, description="delay before the first retry; doubles per failure, with jitter"
    )
    events_retry_max_seconds: Annotated[float, Field(gt=0)] = Field(
        300.0, description="the longest delay between two attempts of a delivery"
    )
    events_claim_timeout_seconds: Annotated[float, Field(ge=1)] = Field(
        60.0, description="after this, a delivery claimed by a dispatcher that died is taken over"
    )
    events_poll_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        1.0, description="how often the dispatcher looks for work committed by other processes"
    )
    events_hold_writes_after_seconds: Annotated[float, Field(ge=0, le=60)] = Field(
        0.5,
        description=(
            "write requests wait while the dispatcher of their process runs more than this behind"
            " the events it delivers, so that under more load than it keeps up with the delivery"
            " lag stays bounded; 0: never (only where the dispatcher runs in `shop serve`)"
        ),
    )
    events_hold_writes_max_seconds: Annotated[float, Field(gt=0, le=30)] = Field(
        2.0, description="the longest a write request waits for that; then it is served all the same"
    )
    events_retention_hours: Annotated[float, Field(ge=0)] = Field(
        168.0, description="completed deliveries (and their events) are pruned after this"
    )
    reservation_ttl_seconds: Annotated[int, Field(ge=1)] = Field(
        900, description="a stock reservation no placed order confirmed is released after this"
    )
    maintenance_interval_seconds: Annotated[float, Field(gt=0)] = Field(
        60.0, description="how often expired reservations are released and old deliveries pruned"
    )
    mail_from: Annotated[str, Field(min_length=3, max_length=200)] = Field(
        "modular-shop <shop@localhost>", description="sender of the shop's mail: one ASCII address, optionally named"
    )
    smtp_url: SecretStr | None = Field(
        None, description="smtp://, smtp+starttls:// or smtps://[user:password@]host[:port]; unset = .eml files"
    )
    smtp_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = Field(
        10.0, description="how long a conversation with the SMTP server may take"
    )

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

    # Declared after served_contexts and before service_token: validators read them in this order.
    product_service_url: str | None = Field(
        None,
        validate_default=True,
        description="base URL of the product service, e.g. http://product:8000; unset = product runs in process",
    )
    user_service_url: str | None = Field(
        None,
        validate_default=True,
        description="base URL of the user service, e.g. http://user:8000, which every bearer token is checked"
        " against; unset = user runs in process",
    )
    service_token: SecretStr | None = Field(
        None,
        validate_default=True,
        description="shared secret (32+ chars) the shop's services present to each other's internal endpoints",
    )
    # Declared after served_contexts and product_service_url: its validator reads them.
    token_secret: SecretStr | None = Field(
        None,
        validate_default=True,
        description="signs bearer tokens (32+ chars); generated into the instance folder if unset",
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

    @field_validator("token_previous_secrets")
    @classmethod
    def _previous_secrets_long_enough(cls, value: SecretStr) -> SecretStr:
        if any(len(secret) < MIN_SECRET_LENGTH for secret in split_list(value.get_secret_value())):
            raise ValueError(f"every previous secret must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator(
        "login_rate_limit_per_account", "login_rate_limit_per_address", "registration_rate_limit_per_address"
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        try:
            parsed = limits.parse_many(value)
        except ValueError as error:
            raise ValueError(f"not a rate limit like '10/minute' or '5 per second': {value!r}") from error
        if any(item.amount < 1 for item in parsed):
            raise ValueError(f"a rate limit must allow at least one request: {value!r}")
        return value

    @field_validator("ratelimit_storage_url")
    @classmethod
    def _storage_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if urlsplit(value).scheme not in RATE_LIMIT_STORAGE_SCHEMES:
            raise ValueError(f"the URL's scheme must be one of {', '.join(RATE_LIMIT_STORAGE_SCHEMES)}")
        return value

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

    @field_validator("served_contexts")
    @classmethod
    def _served_contexts(cls, value: str) -> str:
        named_contexts(value)
        return value

    @field_validator("events_broker_url")
    @classmethod
    def _broker_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            if _serves_a_subset(info):
                raise ValueError(
                    "required: this process serves only some contexts, and events reach the others through RabbitMQ"
                )
            return None
        if urlsplit(value.get_secret_value()).scheme not in ("amqp", "amqps"):
            raise ValueError("must be an amqp:// or amqps:// URL")
        return value

    @field_validator("product_service_url")
    @classmethod
    def _product_service_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _service_url("product", callers_of("product"), value, info)

    @field_validator("user_service_url")
    @classmethod
    def _user_service_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _service_url("user", callers_of("user"), value, info)

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
        return _long_enough(value)

    @field_validator("token_secret")
    @classmethod
    def _token_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            if _serves_a_subset(info) or info.data.get("product_service_url") or info.data.get("user_service_url"):
                raise ValueError(
                    "required when contexts are served apart (SERVED_CONTEXTS, PRODUCT_SERVICE_URL, USER_SERVICE_URL):"
                    " every service must verify the tokens the others sign, so all of them need the same secret"
                )
            return None
        return _long_enough(value)

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

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        origins = split_list(value)
        if origins == ("*",):
            return value
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin like https://shop.example.com (scheme, host, optional port;"
                    " no path), nor a lone '*'"
                )
        return value

    def previous_signing_secrets(self) -> tuple[str, ...]:
        return split_list(self.token_previous_secrets.get_secret_value())

    def cors_origins(self) -> tuple[str, ...]:
        return split_list(self.cors_allowed_origins)

    def database_url_for(self, context: str) -> str:
        """The context's own URL, else the shared one, else its own SQLite file."""
        own: str | None = getattr(self, f"{context}_database_url")
        if own:
            return own
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.instance_path.resolve() / f'{context}.db'}"

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

    def service_url_for(self, context: str) -> str | None:
        """``<CONTEXT>_SERVICE_URL``: where the context's published API is served, when apart."""
        url: str | None = getattr(self, f"{context}_service_url", None)
        return url

    def database_schema_for(self, context: str) -> str:
        """The context's PostgreSQL schema: its own setting, else the context's name."""
        own: str | None = getattr(self, f"{context}_database_schema")
        return own or context

    def database_pool(self) -> PoolOptions:
        return PoolOptions(
            size=self.database_pool_size,
            max_overflow=self.database_max_overflow,
            timeout_seconds=self.database_pool_timeout_seconds,
            statement_timeout_ms=self.database_statement_timeout_ms,
            connect_timeout_seconds=self.database_connect_timeout_seconds,
            application_name=self.database_application_name,
        )

    def hosted_contexts(self) -> tuple[str, ...]:
        """The contexts this process serves, in the order of ``CONTEXTS``."""
        return hosted_contexts(self.served_contexts)

    def events_broker_url_value(self) -> str | None:
        return self.events_broker_url.get_secret_value() if self.events_broker_url else None

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

    def service_token_value(self) -> str | None:
        return self.service_token.get_secret_value() if self.service_token else None

    def smtp_url_value(self) -> str | None:
        return self.smtp_url.get_secret_value() if self.smtp_url else None

    def mail_folder(self) -> Path:
        """Where the embedded mailer writes its ``.eml`` files when no SMTP server is set."""
        return self.instance_path.resolve() / "mail"

    def signing_secret(self) -> str:
        """The configured secret, or one generated once into the instance folder and kept."""
        if self.token_secret is not None:
            return self.token_secret.get_secret_value()
        path = self.instance_path.resolve() / SECRET_FILE
        if not path.exists():
            _create_secret_file(path)
        return path.read_text().strip()


class DeliverySettings(Settings):
    """The settings of the commands that only read and steer event delivery (``shop events
    status|dead|retry``): the databases and the broker. The secrets and URLs that calls between
    services need are checked as usual when given, but not required, so that an operator can
    look at a process's deliveries with little more than its SERVED_CONTEXTS, database and
    broker settings."""

    @field_validator("product_service_url")
    @classmethod
    def _product_service_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _service_url("product", (), value, info)

    @field_validator("user_service_url")
    @classmethod
    def _user_service_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _service_url("user", (), value, info)

    @field_validator("service_token")
    @classmethod
    def _service_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return _long_enough(value) if value is not None and value.get_secret_value() else None

    @field_validator("token_secret")
    @classmethod
    def _token_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return _long_enough(value) if value is not None and value.get_secret_value() else None


def _hosted(info: ValidationInfo) -> tuple[str, ...]:
    """The contexts served, from the settings validated so far (all of them when
    SERVED_CONTEXTS was not valid: its own error says so)."""
    return hosted_contexts(info.data.get("served_contexts", ""))


def _service_url(context: str, callers: tuple[str, ...], value: str | None, info: ValidationInfo) -> str | None:
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


def _serves_a_subset(info: ValidationInfo) -> bool:
    return len(_hosted(info)) < len(CONTEXTS)


def _long_enough(secret: SecretStr) -> SecretStr:
    if len(secret.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
    return secret


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


def _create_secret_file(path: Path) -> None:
    """Write a fresh secret beside ``path`` and link it into place: processes starting at
    the same moment all end up reading the one secret that won, never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_urlsafe(48))
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
