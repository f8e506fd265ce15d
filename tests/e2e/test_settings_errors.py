"""A bad setting stops every ``shop`` command before it does anything, with one line per
setting naming its environment variable and what is wrong, never its value."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    assert result.stderr.splitlines()[1:] == [
        "  WEB_THREADS: Input should be a valid integer, unable to parse string as an integer"
    ]
