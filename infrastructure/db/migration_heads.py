"""Whether a database is at the head of its migration history, found out without Alembic.

Every start of ``shop serve --migrate`` (``make run``) but the first has nothing to apply, yet
Alembic, to say so, is imported (a fifth of a second on a loaded machine), and imports every
revision script and the history's ``env.py``. The scripts Alembic writes state their place in
the history in plain assignments (``revision = '...'``, ``down_revision = ...``): read those
without running them, compare the heads with the version table, and leave Alembic to do the rest
when they differ, or when a script says anything less plain (branch labels, dependencies,
computed values), which only Alembic can interpret, or when the history is not one line to a
single head (several heads, a parent no script defines), which Alembic refuses to upgrade to
``head`` with an error that says why.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sqlalchemy import column, inspect, select, table

from infrastructure.db.database import Database

# The files Alembic takes for revision scripts (alembic.script.base, sources only).
_SCRIPT = re.compile(r"(?!\.\#|__init__)(.*\.py)$")
_STATED = ("revision", "down_revision", "branch_labels", "depends_on")


def script_head(script_location: Path) -> str | None:
    """The head revision of the history in ``script_location``, read from its scripts'
    assignments; None when it has no script, when a script's place in the history is not
    stated plainly, or when the history has several heads or names a parent no script defines:
    Alembic's ``upgrade head`` fails on those, and skipping it would hide that."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((script_location / "versions").iterdir()):
        if not path.is_file() or not _SCRIPT.match(path.name):
            continue
        stated = _stated(path)
        if stated is None:
            return None
        revision, down = stated.get("revision"), stated.get("down_revision")
        if not isinstance(revision, str) or stated.get("branch_labels") or stated.get("depends_on"):
            return None
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list) and all(isinstance(parent, str) for parent in down):
            parents.update(down)
        elif down is not None:
            return None
        revisions.add(revision)
    heads = revisions - parents
    if len(heads) != 1 or not parents <= revisions:
        return None
    (head,) = heads
    return head


def _stated(path: Path) -> dict[str, object] | None:
    """The literal values a script assigns to the names Alembic reads, or None if it assigns one
    of them anything but a literal."""
    stated: dict[str, object] = {}
    try:
        body = ast.parse(path.read_bytes(), filename=str(path)).body
    except (SyntaxError, ValueError):
        return None  # Alembic reads it and says what is wrong
    for node in body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in _STATED:
                try:
                    stated[target.id] = ast.literal_eval(value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    return None
    return stated


def current_revisions(database: Database, version_table: str) -> frozenset[str] | None:
    """The revisions the database's version table records; None when it has no version table."""
    with database.reading() as connection:
        if not inspect(connection).has_table(version_table, schema=database.schema):
            return None
        versions = table(version_table, column("version_num"), schema=database.schema)
        return frozenset(connection.execute(select(versions.c.version_num)).scalars())


def at_heads(database: Database, script_location: Path, version_table: str) -> bool:
    """Whether the database is at the head of the history (a single one, or Alembic decides):
    upgrading to ``head`` would apply nothing. False whenever in doubt (Alembic then finds out)."""
    head = script_head(script_location)
    return head is not None and current_revisions(database, version_table) == frozenset({head})
