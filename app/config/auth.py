"""Who may do what, and at what pace: bearer tokens and their signing secrets, login and
registration rate limits, and password hashing."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import limits
from pydantic import Field, SecretStr, ValidationInfo, field_validator

from app.config.base import SettingsGroup, long_enough, split_list
from app.config.services import SERVICE_URLS, serves_a_subset
from infrastructure.auth.tokens import MIN_SECRET_LENGTH

SECRET_FILE = "token-secret"
# What tells a process that contexts are served apart, as TOKEN_SECRET's error names it.
APART_SETTINGS = ("SERVED_CONTEXTS", *(url.upper() for url in SERVICE_URLS))
RATE_LIMIT_STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")


class AuthSettings(SettingsGroup):
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
    # Its validator reads SERVED_CONTEXTS and the service URLs: the group comes after theirs.
    token_secret: SecretStr | None = Field(
        None,
        validate_default=True,
        description="signs bearer tokens (32+ chars); generated into the instance folder if unset",
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

    @field_validator("token_secret")
    @classmethod
    def _token_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            if serves_a_subset(info) or any(info.data.get(url) for url in SERVICE_URLS):
                raise ValueError(
                    f"required when contexts are served apart ({', '.join(APART_SETTINGS)}):"
                    " every service must verify the tokens the others sign, so all of them need the same secret"
                )
            return None
        return long_enough(value)

    def previous_signing_secrets(self) -> tuple[str, ...]:
        return split_list(self.token_previous_secrets.get_secret_value())

    def signing_secret(self) -> str:
        """The configured secret, or one generated once into the instance folder and kept."""
        if self.token_secret is not None:
            return self.token_secret.get_secret_value()
        path = self.instance_path.resolve() / SECRET_FILE
        if not path.exists():
            _create_secret_file(path)
        return path.read_text().strip()


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
