"""The databases: the shared URL, each context's own URL and schema, and the pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, create_model, field_validator

from app.config.base import SettingsGroup
from app.registry import CONTEXTS
from infrastructure.db.database import PoolOptions, database_url

SchemaName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]


class _SharedDatabase(SettingsGroup):
    database_url: str | None = Field(None, description="default database of every context")

    @field_validator("database_url", *(f"{context}_database_url" for context in CONTEXTS), check_fields=False)
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        database_url(value)  # its errors never quote the URL's password
        return value


def _context_databases() -> type[_SharedDatabase]:
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
    return create_model("ContextDatabases", __base__=_SharedDatabase, __module__=__name__, **fields)


if TYPE_CHECKING:
    _ContextDatabases = _SharedDatabase
else:
    _ContextDatabases = _context_databases()


class DatabaseSettings(_ContextDatabases):
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

    def database_url_for(self, context: str) -> str:
        """The context's own URL, else the shared one, else its own SQLite file."""
        own: str | None = getattr(self, f"{context}_database_url")
        if own:
            return own
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.instance_path.resolve() / f'{context}.db'}"

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
