"""Every context's migration history, applied to that context's own database."""

from __future__ import annotations

import importlib
from pathlib import Path

from app.config import CONTEXTS
from infrastructure import migrations
from infrastructure.db import Database


def script_location(context: str) -> Path:
    package = importlib.import_module(f"contexts.{context}")
    return Path(str(package.__file__)).parent / "migrations"


def version_table(context: str) -> str:
    return f"{context}_alembic_version"


def upgrade_all(databases: dict[str, Database], revision: str = "head") -> None:
    """Migrate the given contexts' databases (those a process serves), in ``CONTEXTS`` order."""
    for context in [name for name in CONTEXTS if name in databases]:
        migrations.upgrade(databases[context], script_location(context), version_table(context), revision)


def downgrade_all(databases: dict[str, Database], revision: str = "base") -> None:
    for context in [name for name in reversed(CONTEXTS) if name in databases]:
        migrations.downgrade(databases[context], script_location(context), version_table(context), revision)
