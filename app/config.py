"""Settings from the environment (and a ``.env`` file), validated once at start-up.

The CLI and the server read the same settings, so they share databases and signing secret
when run from the same folder.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

CONTEXTS = ("user", "product", "order")
SECRET_FILE = "token-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    instance_path: Path = Field(Path("instance"), description="folder for SQLite files and the generated secret")
    database_url: str | None = Field(None, description="default database of every context")
    user_database_url: str | None = None
    product_database_url: str | None = None
    order_database_url: str | None = None

    token_secret: SecretStr | None = Field(
        None, description="signs bearer tokens (32+ chars); generated into the instance folder if unset"
    )
    token_ttl_seconds: Annotated[int, Field(ge=60, le=30 * 86400)] = 3600

    max_content_length: Annotated[int, Field(ge=1024)] = 1024 * 1024
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    argon2_time_cost: Annotated[int, Field(ge=1)] = 3
    argon2_memory_cost_kib: Annotated[int, Field(ge=8)] = 64 * 1024
    argon2_parallelism: Annotated[int, Field(ge=1)] = 4

    def database_url_for(self, context: str) -> str:
        """The context's own URL, else the shared one, else its own SQLite file."""
        own: str | None = getattr(self, f"{context}_database_url")
        if own:
            return own
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.instance_path.resolve() / f'{context}.db'}"

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
