"""Migrated PostgreSQL schemas kept for the next test of the process, emptied, instead of being
dropped and made again.

Making a context's schema costs its migration's DDL (the suite's ~1,000 PostgreSQL tests each made
six, about 100 statements together, and dropped them after: 0.15-0.5 s a test on two cores,
with the machine's load). A schema a test is done with is usually just as its migration left it,
with rows in it. So, when a test ends (:meth:`SchemaPool.give_back`), each of its schemas whose
structure, as the catalogs describe it (see ``_STRUCTURE``), is that of a freshly migrated one,
and whose Alembic revision is too, is taken from any transaction the test left open (every table
locked, or none of its schemas is kept), emptied (its rows deleted, children before parents, its
sequences restarted) and renamed into the pool; any other (a test migrated it down, added a
column, left a reader behind, never migrated it) is dropped as before. The next app on a new
instance takes its contexts' schemas from the pool by renaming them to its own names
(:meth:`SchemaPool.take`), in one round trip.

A structure counts as fresh by comparison with what this process saw right after migrating that
context itself (:meth:`SchemaPool.learn`); until it has, nothing of that context is kept. Renames
keep every object's identity (a sequence owned by a column stays its default), and no migration
names its schema in a function or view body that a rename would leave behind. Pooled schemas are
dropped when the process exits; a worker killed outright leaves them, as it left its test's
schemas before.
"""

from __future__ import annotations

import atexit
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import OperationalError

from app.migrations import version_table
from infrastructure.db.database import database_url

# A schema's structure as text, its own name replaced so that two schemas compare alike: its
# relations (with row security), columns (type, collation, nullability, default, identity,
# generation), indexes, constraints, triggers, sequences' settings, policies, functions (with
# their bodies) and types. What PostgreSQL keeps beyond these (comments, privileges, storage
# options) no test changes. pg_class has no index on the schema: it is read once, and the other
# catalogs are looked up by its rows' oids through theirs.
_STRUCTURE = text(
    r"""
    WITH relations AS MATERIALIZED (
        SELECT c.oid, c.relname, c.relkind, c.relnamespace, c.relrowsecurity FROM pg_class c
         WHERE c.relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname = ANY(:names))
    )
    SELECT n.nspname, replace(concat_ws('|',
        (SELECT string_agg(format('%s:%s:%s', r.relname, r.relkind, r.relrowsecurity), ',' ORDER BY r.relname)
           FROM relations r WHERE r.relnamespace = n.oid),
        (SELECT string_agg(format('%s.%s:%s:%s:%s:%s:%s:%s', r.relname, a.attname,
                                  format_type(a.atttypid, a.atttypmod), a.attcollation::regcollation, a.attnotnull,
                                  a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid)),
                           ',' ORDER BY r.relname, a.attnum)
           FROM relations r JOIN pg_attribute a ON a.attrelid = r.oid
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE r.relnamespace = n.oid AND r.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped),
        (SELECT string_agg(definition, ',' ORDER BY definition)
           FROM (SELECT pg_get_indexdef(i.indexrelid) AS definition
                   FROM relations r JOIN pg_index i ON i.indrelid = r.oid WHERE r.relnamespace = n.oid) indexes),
        (SELECT string_agg(definition, ',' ORDER BY definition)
           FROM (SELECT format('%s:%s', con.conname, pg_get_constraintdef(con.oid)) AS definition
                   FROM relations r JOIN pg_constraint con ON con.conrelid = r.oid
                  WHERE r.relnamespace = n.oid) constraints),
        (SELECT string_agg(definition, ',' ORDER BY definition)
           FROM (SELECT pg_get_triggerdef(t.oid) AS definition
                   FROM relations r JOIN pg_trigger t ON t.tgrelid = r.oid
                  WHERE r.relnamespace = n.oid AND NOT t.tgisinternal) triggers),
        (SELECT string_agg(format('%s:%s:%s:%s:%s:%s', r.relname, s.seqtypid::regtype, s.seqstart, s.seqincrement,
                                  s.seqmin || '..' || s.seqmax, s.seqcycle), ',' ORDER BY r.relname)
           FROM relations r JOIN pg_sequence s ON s.seqrelid = r.oid WHERE r.relnamespace = n.oid),
        (SELECT string_agg(definition, ',' ORDER BY definition)
           FROM (SELECT format('%s:%s:%s:%s:%s', po.polname, po.polcmd, po.polpermissive,
                               pg_get_expr(po.polqual, po.polrelid), pg_get_expr(po.polwithcheck, po.polrelid))
                           AS definition
                   FROM relations r JOIN pg_policy po ON po.polrelid = r.oid WHERE r.relnamespace = n.oid) policies),
        (SELECT string_agg(format('%s:%s', p.oid::regprocedure, md5(p.prosrc)), ',' ORDER BY p.oid::regprocedure::text)
           FROM pg_proc p WHERE p.pronamespace = n.oid),
        (SELECT string_agg(format('%s:%s', t.typname, t.typtype), ',' ORDER BY t.typname)
           FROM pg_type t WHERE t.typnamespace = n.oid)
      ), n.nspname, '~')
      FROM pg_namespace n WHERE n.nspname = ANY(:names)
    """
)
_TABLES = text(
    """
    SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = :name AND c.relkind IN ('r', 'p', 'S')
    """
)
_FOREIGN_KEYS = text(
    """
    SELECT child.relname, parent.relname FROM pg_constraint con
      JOIN pg_class child ON child.oid = con.conrelid JOIN pg_class parent ON parent.oid = con.confrelid
     WHERE con.contype = 'f' AND con.connamespace = (SELECT oid FROM pg_namespace WHERE nspname = :name)
    """
)


# A schema serves at most this many tests, then it is dropped and made anew: DELETE leaves dead
# rows that only VACUUM takes away, and a server may run without autovacuum (the CI machine's
# does), where a schema that served hundreds of tests would carry all of their dead rows.
MAX_TESTS_SERVED = 25
# PostgreSQL's lock_not_available: a lock_timeout ran out.
_LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True)
class _Fresh:
    """A context's schema as its migration leaves it: what it looks like, and how to empty it."""

    structure: str
    revisions: str
    tables: tuple[str, ...]  # children before their parents
    sequences: tuple[str, ...]


class SchemaPool:
    """Emptied, migrated schemas of one process, per context, on the server at ``url``."""

    def __init__(self, url: str) -> None:
        self._engine = create_engine(database_url(url), pool_size=1, max_overflow=0, pool_pre_ping=True)
        self._fresh: dict[str, _Fresh] = {}
        self._kept: dict[str, list[tuple[str, int]]] = defaultdict(list)  # (name, tests served)
        self._served: dict[str, int] = {}  # a schema taken from the pool → tests it has served
        atexit.register(self.close)

    def take(self, prefix: str, contexts: Iterable[str]) -> set[str]:
        """Rename a kept schema to ``<prefix>_<context>`` for each of ``contexts`` the pool holds
        one of; those contexts (their schemas migrated and empty)."""
        taken = {context: self._kept[context][-1] for context in contexts if self._kept[context]}
        if not taken:
            return set()
        with self._engine.begin() as connection:
            connection.exec_driver_sql(
                ";".join(
                    f'ALTER SCHEMA "{kept}" RENAME TO "{prefix}_{context}"' for context, (kept, _) in taken.items()
                )
            )
        for context, (_, served) in taken.items():
            self._kept[context].pop()
            self._served[f"{prefix}_{context}"] = served
        return set(taken)

    def learn(self, prefix: str, contexts: Iterable[str]) -> None:
        """Record how ``<prefix>_<context>`` looks for each of ``contexts`` not known yet: they
        were just migrated, nothing has written to them."""
        unknown = [context for context in contexts if context not in self._fresh]
        if not unknown:
            return
        with self._engine.begin() as connection:
            structures = _structures(connection, [f"{prefix}_{context}" for context in unknown])
            for context in unknown:
                schema = f"{prefix}_{context}"
                relations = connection.execute(_TABLES, {"name": schema}).all()
                edges = connection.execute(_FOREIGN_KEYS, {"name": schema}).all()
                tables = [name for name, kind in relations if kind != "S" and name != version_table(context)]
                self._fresh[context] = _Fresh(
                    structure=structures[schema],
                    revisions=_revisions(connection, schema, context),
                    tables=_children_first(tables, edges),
                    sequences=tuple(sorted(name for name, kind in relations if kind == "S")),
                )

    def give_back(self, schemas: Collection[tuple[str, str]]) -> None:
        """Keep each ``(schema, context)`` that is as fresh as its context's and has served fewer
        than ``MAX_TESTS_SERVED`` tests, emptied; drop the rest (those that do not exist are
        ignored). While a connection the test left open still uses one of its tables, none is
        kept: they are dropped, which waits for that connection (up to 10 s) as before."""
        if not schemas:
            return
        try:
            kept = self._empty_the_fresh(schemas)
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            kept = {}
        for schema, (context, served) in kept.items():
            self._kept[context].append((schema, served))
        with self._engine.begin() as connection:
            connection.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            # The kept ones have their pool names by now: the rest is dropped.
            _drop(connection, [schema for schema, _ in schemas])

    def close(self) -> None:
        """Drop every kept schema."""
        kept = [schema for schemas in self._kept.values() for schema, _ in schemas]
        self._kept.clear()
        try:
            if kept:
                with self._engine.begin() as connection:
                    _drop(connection, kept)
        finally:
            self._engine.dispose()

    def _empty_the_fresh(self, schemas: Collection[tuple[str, str]]) -> dict[str, tuple[str, int]]:
        """Empty and rename into the pool the schemas that are as fresh as their context's and may
        serve another test (in one transaction); the new name of each → its context and the tests
        it has served."""
        served = {schema: self._served.pop(schema, 0) + 1 for schema, _ in schemas}
        known = [
            (schema, context)
            for schema, context in schemas
            if context in self._fresh and served[schema] < MAX_TESTS_SERVED
        ]
        if not known:
            return {}
        with self._engine.begin() as connection:
            connection.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
            structures = _structures(connection, [schema for schema, _ in known])
            alike = [
                (schema, context)
                for schema, context in known
                if structures.get(schema) == self._fresh[context].structure
            ]
            # DELETE and a rename wait for no reader, nor see rows another transaction has yet to
            # commit: every table is taken from whatever the test left open first, or none is kept.
            tables = [
                f'"{schema}"."{table}"'
                for schema, context in alike
                for table in (*self._fresh[context].tables, version_table(context))
            ]
            if tables:
                connection.exec_driver_sql(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
            fresh = [
                (schema, context)
                for schema, context in alike
                if _revisions(connection, schema, context) == self._fresh[context].revisions
            ]
            statements: list[str] = []
            kept: dict[str, tuple[str, int]] = {}
            for schema, context in fresh:
                shape = self._fresh[context]
                statements += [f'DELETE FROM "{schema}"."{table}"' for table in shape.tables]
                statements += [f'ALTER SEQUENCE "{schema}"."{sequence}" RESTART' for sequence in shape.sequences]
                pooled = f"pool{uuid.uuid4().hex[:12]}_{context}"
                statements.append(f'ALTER SCHEMA "{schema}" RENAME TO "{pooled}"')
                kept[pooled] = (context, served[schema])
            if statements:
                connection.exec_driver_sql(";".join(statements))
        return kept


def _drop(connection: Connection, names: list[str]) -> None:
    """Drop the schemas ``names`` that exist, in one round trip."""
    connection.exec_driver_sql(";".join(f'DROP SCHEMA IF EXISTS "{name}" CASCADE' for name in names))


def _structures(connection: Connection, names: list[str]) -> dict[str, str]:
    # The catalogs' statistics say little of a server whose schemas come and go all day: look
    # up by index, and compile nothing.
    connection.exec_driver_sql("SET LOCAL jit = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
    return {name: structure for name, structure in connection.execute(_STRUCTURE, {"names": names})}


def _revisions(connection: Connection, schema: str, context: str) -> str:
    """The revisions ``schema``'s Alembic table records, as one string."""
    rows = connection.exec_driver_sql(f'SELECT version_num FROM "{schema}"."{version_table(context)}"').all()
    return ",".join(sorted(str(row[0]) for row in rows))


def _children_first(tables: list[str], edges: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """``tables`` ordered so that a table referencing another comes before it."""
    parents: dict[str, set[str]] = {table: set() for table in tables}
    for child, parent in edges:
        if child != parent and child in parents:
            parents[child].add(parent)
    ordered: list[str] = []
    placed: set[str] = set()

    def place(table: str) -> None:
        # Every table that references ``table`` goes first.
        if table in placed:
            return
        placed.add(table)
        for referencing in sorted(other for other, above in parents.items() if table in above):
            place(referencing)
        ordered.append(table)

    for table in sorted(tables):
        place(table)
    return tuple(ordered)
