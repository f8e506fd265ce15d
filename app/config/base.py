"""What every group of settings shares: how they are read, and the instance folder."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from infrastructure.auth.tokens import MIN_SECRET_LENGTH


class SettingsGroup(BaseSettings):
    # Errors name the setting and what is wrong, never the value: it may be a secret. An empty
    # variable is unset (``SETTING=`` in .env.example or a compose file keeps the default).
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True, env_ignore_empty=True
    )

    instance_path: Path = Field(Path("instance"), description="folder for SQLite files and the generated secret")


def split_list(value: str) -> tuple[str, ...]:
    """``" a, b,,c "`` → ``("a", "b", "c")``: the form of the comma-separated settings."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def long_enough(secret: SecretStr) -> SecretStr:
    if len(secret.get_secret_value()) < MIN_SECRET_LENGTH:
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
    return secret
