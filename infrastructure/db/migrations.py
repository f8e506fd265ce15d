"""Alembic, driven from code: one migration history per context, each with its own version table.

Contexts' ``migrations/env.py`` call :func:`run_env`, so the environment logic exists once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import structlog
from alembic import command, context, op
from alembic.config import Config
from alembic.runtime.environment import IncludeNameFn
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import MetaData, Table, text

from infrastructure.db.database import Database, create_schema

logger = structlog.get_logger(__name__)


def _config(database: Database, script_location: Path, version_table: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["database"] = database
    config.attributes["version_table"] = version_table
    return config


def upgrade(database: Database, script_location: Path, version_table: str, revision: str = "head") -> None:
    command.upgrade(_config(database, script_location, version_table), revision)


def downgrade(database: Database, script_location: Path, version_table: str, revision: str) -> None:
    command.downgrade(_config(database, script_location, version_table), revision)


def run_env(target_metadata: MetaData, *, include_name: IncludeNameFn | None = None) -> None:
    """Body of every context's ``env.py``: run the history online on the context's database.

    In one writer transaction whose ``search_path`` names the context's schema: the statements
    Alembic compiles carry the schema anyway, but what it reflects (the version table, batch
    operations) and SQL a migration writes by hand find their tables through the search path.

    ``include_name`` is Alembic's hook for what autogenerate compares: a context that keeps
    objects outside its metadata (a search index built by hand) names them there, so they are
    not proposed for removal.
    """
    attributes = context.config.attributes
    database: Database = attributes["database"]
    version_table: str = attributes["version_table"]
    # A writer transaction: on SQLite two concurrent upgrades queue instead of both applying.
    with database.begin(write=True) as connection:
        if database.schema is not None:
            # PostgreSQL's equivalent of that queue: a lock per history, held until commit.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": version_table})
            create_schema(connection, database.schema)
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # The version table, like every table, goes inside the context's schema.
            version_table=version_table,
            version_table_schema=database.schema,
            render_as_batch=connection.dialect.name == "sqlite",
            # SQLite's DDL is transactional once we issue BEGIN ourselves (see infrastructure.db.database).
            transactional_ddl=True,
            compare_type=True,
            include_name=include_name,
            on_version_apply=_log_step,
        )
        # Inside the transaction begun above, which commits when the block ends.
        with context.begin_transaction():
            context.run_migrations()


def _log_step(ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]) -> None:
    """Alembic's ``on_version_apply``: one line per revision applied or reverted, and none when
    the database is up to date, so a start that changes nothing says nothing."""
    logger.info(
        "migration.applied" if step.is_upgrade else "migration.reverted",
        version_table=ctx.version_table,
        revision=step.up_revision_id,
        # A script's message; typed as the base Revision, which has none.
        description=getattr(step.up_revision, "doc", None),
    )


def create_tables(*tables: Table) -> None:
    """Create tables exactly as declared (names from the metadata's convention) in a migration."""
    for table in tables:
        table.create(op.get_bind())


def drop_tables(*tables: Table) -> None:
    for table in reversed(tables):
        table.drop(op.get_bind())
