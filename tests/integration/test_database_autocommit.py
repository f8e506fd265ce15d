"""``Database.autocommit()``: each statement is committed as it ends, so a write that is one
atomic statement (a delivery's effect with its inbox row) needs no BEGIN and COMMIT."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select
from sqlalchemy.schema import CreateSchema

from infrastructure.db.database import Database
from tests.conftest import Backend


@pytest.fixture
def database(tmp_path: Path, backend: Backend) -> Iterator[Database]:
    database = backend.database("audit", tmp_path)
    yield database
    database.dispose()


def test_a_write_there_is_committed_as_its_statement_ends(database: Database) -> None:
    things = Table("autocommit_things", MetaData(schema=database.schema), Column("id", Integer, primary_key=True))
    with database.begin(write=True) as connection:
        if database.schema is not None:
            connection.execute(CreateSchema(database.schema, if_not_exists=True))
        things.create(connection)

    with database.autocommit() as connection:
        connection.execute(insert(things).values(id=1))
        with database.engine.connect() as other:
            assert other.execute(select(things.c.id)).scalars().all() == [1]

    with database.reading() as connection:
        assert connection.execute(select(things.c.id)).scalars().all() == [1]
