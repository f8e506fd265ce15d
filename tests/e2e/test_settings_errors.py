"""A bad setting stops every ``shop`` command before it does anything, with one line per
setting naming its environment variable and what is wrong, never its value."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Backend
from tests.e2e.server import shop, shop_env

SECRET = "hunter2-do-not-print"


@pytest.mark.parametrize("command", [("serve",), ("serve", "--prod"), ("db", "upgrade"), ("events", "status")])
def test_bad_settings_stop_the_command_naming_each_setting(tmp_path: Path, command: tuple[str, ...]) -> None:
    env = shop_env(
        tmp_path / "instance",
        WEB_WORKERS="0",
        DATABASE_POOL_SIZE="lots",
        SMTP_URL=f"smtp://shop:{SECRET}@mail.example.com:notaport",
    )

    result = shop(*command, env=env, cwd=tmp_path, check=False)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "Error: invalid settings:"
    named = sorted(line.split(":")[0].strip() for line in lines[1:])
    assert named == ["DATABASE_POOL_SIZE", "SMTP_URL", "WEB_WORKERS"], result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_settings_are_read_from_a_dot_env_file_in_the_working_folder(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WEB_THREADS=many\nEVENTS_WORKERS=4\n")

    result = shop("serve", "--prod", env=shop_env(tmp_path / "instance"), cwd=tmp_path, check=False)

    assert result.returncode == 1
    assert result.stderr.splitlines()[1:] == ["  WEB_THREADS: must be a whole number"]


def assert_one_line_each(result: subprocess.CompletedProcess[str], *named: str) -> list[str]:
    """Exit 1, no traceback, no secret; after the heading, one line per setting in ``named``."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "Error: invalid settings:", result.stderr
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == sorted(named), result.stderr
    return lines[1:]


@pytest.mark.parametrize(
    ("settings", "named", "complaint"),
    [
        ({"TOKEN_SECRET": "too-short"}, "TOKEN_SECRET", "must be at least 32 characters"),
        ({"DATABASE_URL": f"mysql://shop:{SECRET}@db/shop"}, "DATABASE_URL", "unsupported database or driver 'mysql'"),
        ({"ORDER_DATABASE_URL": f"postgresql+asyncpg://shop:{SECRET}@db/shop"}, "ORDER_DATABASE_URL", "unsupported"),
        ({"DATABASE_URL": f"not a url {SECRET}"}, "DATABASE_URL", "not a URL like"),
    ],
)
def test_settings_the_app_cannot_start_with_are_one_line_each(
    tmp_path: Path, settings: dict[str, str], named: str, complaint: str
) -> None:
    result = shop("db", "upgrade", env=shop_env(tmp_path / "instance", **settings), cwd=tmp_path, check=False)

    [line] = assert_one_line_each(result, named)
    assert complaint in line


def test_rules_across_settings_are_reported_together_with_the_field_errors(tmp_path: Path) -> None:
    env = shop_env(tmp_path / "instance", SERVED_CONTEXTS="order", WEB_WORKERS="0")

    result = shop("serve", "--prod", env=env, cwd=tmp_path, check=False)

    assert_one_line_each(
        result, "WEB_WORKERS", "EVENTS_BROKER_URL", "PRODUCT_SERVICE_URL", "USER_SERVICE_URL", "TOKEN_SECRET"
    )


def test_a_database_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = shop_env(tmp_path / "instance", DATABASE_URL=f"postgresql://shop:{SECRET}@127.0.0.1:{port}/shop")

    result = shop("db", "upgrade", env=env, cwd=tmp_path, check=False)

    assert result.returncode == 1
    assert SECRET not in result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: a database did not answer: "), result.stderr
    assert f"port {port} failed: Connection refused" in line


@pytest.mark.parametrize(
    "command", [("seed-demo",), ("users", "create-admin", "root@example.com", "--password", "correct horse battery")]
)
def test_a_command_run_before_the_tables_are_made_says_to_upgrade(
    tmp_path: Path, backend: Backend, command: tuple[str, ...]
) -> None:
    """It said "a database did not answer" (SQLite) or printed a traceback (PostgreSQL), and
    sent the operator looking at a server that was fine."""
    env = shop_env(tmp_path / "instance")

    result = shop(*command, env=env, cwd=tmp_path, check=False)

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: the databases are not set up ("), result.stderr
    assert line.endswith("run `shop db upgrade` first"), result.stderr


@pytest.mark.parametrize("command", [("db", "upgrade"), ("serve", "--prod")])
def test_an_instance_folder_that_cannot_be_made_is_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    (tmp_path / "file").write_text("not a folder")

    result = shop(*command, env=shop_env(tmp_path / "file" / "instance"), cwd=tmp_path, check=False)

    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: cannot use {tmp_path / 'file'}"), result.stderr
