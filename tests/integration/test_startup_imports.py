"""A start imports and does only what the configuration needs (issue 16: a second `make run`
answers within 2 s): no client of a service, a broker or Redis in the embedded default, no
Alembic when the databases are up to date, no OpenAPI document until one is asked for.

What a process imports is seen in a fresh interpreter: the suite's own process has them all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from app.migrations import script_location, version_table
from app.registry import CONTEXTS
from infrastructure.db import migrations
from infrastructure.db.database import Database
from infrastructure.db.migration_heads import at_heads, script_head
from tests.conftest import Backend, database_for
from tests.e2e.server import shop_env

# What the embedded default (one process, every context, no broker, no Redis) never uses.
CLIENTS = (
    "httpx",
    "tenacity",
    "pybreaker",
    "redis",
    "kombu",
    "amqp",
    "infrastructure.remote.service",
    "infrastructure.remote.breakers",
)


def probe(code: str, env: dict[str, str], cwd: Path) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object last, which is returned."""
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return answer


BUILD_APP = f"""
import json, sys
from app.api_docs import openapi_document
from app.factory import create_app

app = create_app()
with app.test_client() as client:
    products = client.get("/api/v1/products").status_code
print(json.dumps({{
    "loaded": sorted(name for name in {CLIENTS!r} if name in sys.modules),
    "document_built": openapi_document.cache_info().currsize > 0,
}}))
"""


def test_the_embedded_default_imports_no_client_of_another_service_nor_of_the_broker(tmp_path: Path) -> None:
    answer = probe(BUILD_APP, shop_env(tmp_path / "instance"), tmp_path)

    assert answer == {"loaded": [], "document_built": False}


def test_a_process_configured_to_call_services_and_a_broker_imports_their_clients(tmp_path: Path) -> None:
    """The other side of the laziness: configured, the clients are there from the start (the
    settings and the clients are checked then, not on the first call)."""
    env = shop_env(
        tmp_path / "instance",
        SERVED_CONTEXTS="order",
        PRODUCT_SERVICE_URL="http://127.0.0.1:9",
        USER_SERVICE_URL="http://127.0.0.1:9",
        SERVICE_TOKEN="s" * 40,
        TOKEN_SECRET="t" * 40,
        EVENTS_BROKER_URL="amqp://guest:guest@127.0.0.1:9//",
    )

    answer = probe(BUILD_APP, env, tmp_path)

    assert answer["loaded"] == sorted(CLIENTS)


UPGRADE = """
import json, sys
from app.cli import main

main(["db", "upgrade"], standalone_mode=False)
print(json.dumps({"alembic": "alembic" in sys.modules}))
"""


def test_upgrading_up_to_date_databases_needs_no_alembic_and_a_missing_revision_is_applied(
    tmp_path: Path, backend: Backend
) -> None:
    """`shop serve --migrate` (`make run`) and `shop db upgrade` share this path."""
    env = shop_env(tmp_path / "instance")

    assert probe(UPGRADE, env, tmp_path) == {"alembic": True}  # fresh databases: everything applied
    assert probe(UPGRADE, env, tmp_path) == {"alembic": False}  # nothing to apply

    user = database_for("user", tmp_path / "instance")
    try:
        scripts = ScriptDirectory.from_config(_config("user"))
        head = scripts.get_revision("head")
        assert head is not None
        migrations.downgrade(user, script_location("user"), version_table("user"), str(head.down_revision))
        assert not at_heads(user, script_location("user"), version_table("user"))

        assert probe(UPGRADE, env, tmp_path) == {"alembic": True}
        assert at_heads(user, script_location("user"), version_table("user"))
    finally:
        user.dispose()


def _config(context: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location(context)))
    return config


@pytest.mark.parametrize("context", CONTEXTS)
def test_the_heads_read_from_the_scripts_are_alembics(context: str) -> None:
    alembics = ScriptDirectory.from_config(_config(context)).get_heads()

    assert [script_head(script_location(context))] == list(alembics)


@pytest.mark.parametrize(
    "statement",
    [
        "branch_labels = ('feature',)",
        "depends_on = 'other_0001'",
        "down_revision = 'x' + '1'",
    ],
)
def test_a_script_stating_more_than_a_plain_history_is_left_to_alembic(tmp_path: Path, statement: str) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "x_0001_first.py").write_text("revision = 'x1'\ndown_revision = None\n")
    (versions / "x_0002_second.py").write_text(f"revision = 'x2'\ndown_revision = 'x1'\n{statement}\n")

    assert script_head(tmp_path) is None


def test_merged_branches_and_annotated_assignments_are_read(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text("revision: str = 'a'\ndown_revision: str | None = None\n")
    (versions / "b.py").write_text("revision = 'b'\ndown_revision = 'a'\n")
    (versions / "c.py").write_text("revision = 'c'\ndown_revision = 'a'\n")
    (versions / "d.py").write_text("revision = 'd'\ndown_revision = ('b', 'c')\n")
    (versions / "__init__.py").write_text("revision = 'not a script'\n")

    assert script_head(tmp_path) == "d"


@pytest.mark.parametrize(
    "scripts",
    [
        pytest.param({"b": "'a'", "c": "'a'"}, id="several heads"),
        pytest.param({"b": "'a'", "c": "'gone'"}, id="a parent no script defines"),
        pytest.param({"b": "'a'", "c": "('b', 'gone')"}, id="a merge of a parent no script defines"),
    ],
)
def test_a_history_that_is_not_one_line_to_one_head_is_left_to_alembic(tmp_path: Path, scripts: dict[str, str]) -> None:
    """Alembic's ``upgrade head`` fails on these, saying why; at_heads must not skip it."""
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text("revision = 'a'\ndown_revision = None\n")
    for revision, down in scripts.items():
        (versions / f"{revision}.py").write_text(f"revision = {revision!r}\ndown_revision = {down}\n")

    assert script_head(tmp_path) is None


def test_a_database_at_several_heads_is_not_taken_for_up_to_date(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text("revision = 'a'\ndown_revision = None\n")
    (versions / "b.py").write_text("revision = 'b'\ndown_revision = 'a'\n")
    (versions / "c.py").write_text("revision = 'c'\ndown_revision = 'a'\n")
    database = Database("context", f"sqlite:///{tmp_path / 'context.db'}")
    try:
        with database.begin(write=True) as connection:
            connection.execute(text("CREATE TABLE versions (version_num VARCHAR(32) PRIMARY KEY)"))
            connection.execute(text("INSERT INTO versions (version_num) VALUES ('b'), ('c')"))

        assert not at_heads(database, tmp_path, "versions")
    finally:
        database.dispose()
