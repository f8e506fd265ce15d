"""Every context's migration history, applied to that context's own database.

Alembic (``infrastructure.db.migrations``) is imported only when a history has something to apply
or revert: a start whose databases are up to date finds that out without it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from app.registry import CONTEXTS
from infrastructure.db.database import Database
from infrastructure.db.migration_heads import at_heads


def script_location(context: str) -> Path:
    package = importlib.import_module(f"contexts.{context}")
    return Path(str(package.__file__)).parent / "migrations"


def version_table(context: str) -> str:
    return f"{context}_alembic_version"


def upgrade_all(databases: dict[str, Database], revision: str = "head") -> None:
    """Migrate the given contexts' databases (those a process serves), in ``CONTEXTS`` order."""
    for context in [name for name in CONTEXTS if name in databases]:
        location, table = script_location(context), version_table(context)
        if revision == "head" and at_heads(databases[context], location, table):
            continue
        from infrastructure.db import migrations

        migrations.upgrade(databases[context], location, table, revision)


def downgrade_all(databases: dict[str, Database], revision: str = "base") -> None:
    from infrastructure.db import migrations

    for context in [name for name in reversed(CONTEXTS) if name in databases]:
        migrations.downgrade(databases[context], script_location(context), version_table(context), revision)
