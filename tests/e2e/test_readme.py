"""The README's "Trying it" works as written: its shell blocks run against a real server.

The first block starts the server (``make run``); the test starts what it starts, ``shop db
upgrade`` then ``shop serve`` on a free port given as ``PORT``, in a folder of its own whose
``.venv`` is the running one. The second block is then run by bash, unchanged, with that
``PORT`` in its environment and the administrator's password typed on its standard input, as a
reader in a second terminal would. The blocks after it hold placeholders; they are only checked
to use the same ``$SHOP`` address. Every answer it prints is checked, so a README whose
commands no longer work, or work but no longer place the order, fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import ShopServer, shop, shop_env

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
FENCED_SHELL = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
ADMIN_PASSWORD = "admin password for the README"


def trying_it_blocks() -> list[str]:
    """The fenced ``sh`` blocks of the README's "Trying it" section, in order."""
    text = README.read_text()
    section = text[text.index("\n## Trying it\n") :]
    section = section[: section.index("\n## ", 1)]
    return FENCED_SHELL.findall(section)


def printed_documents(stdout: str) -> list[Any]:
    """The JSON answers the commands printed (curl's answers are one line each; the shop
    commands print plain text), in order."""
    documents: list[Any] = []
    for line in stdout.splitlines():
        # curl prints no newline after a body, so a document may end a line that began otherwise.
        start = line.find("{")
        if start >= 0:
            documents.append(json.loads(line[start:]))
    return documents


def test_trying_it_runs_as_written(tmp_path: Path) -> None:
    # The blocks after these two are examples with placeholders (<yours>, <user id>), not run.
    server_block, commands, *examples = trying_it_blocks()
    assert not [block for block in examples if "localhost:8000" in block], "examples honour PORT: use $SHOP"
    assert server_block.strip() == "make run", "the test starts what `make run` starts; teach it the new way"
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = shop_env(tmp_path / "instance")
    shop("db", "upgrade", env=env, cwd=tmp_path)

    # A generous start-up: the machines running the suite are often busy.
    with ShopServer(env, tmp_path / "server.log", cwd=tmp_path, port_from_env=True, startup_timeout=120) as server:
        result = subprocess.run(
            ["bash", "-e", "-u", "-o", "pipefail", "-c", commands],
            env={**env, "PORT": str(server.port)},
            cwd=tmp_path,
            input=f"{ADMIN_PASSWORD}\n{ADMIN_PASSWORD}\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        admin_login = httpx.post(
            f"{server.url}/api/v1/auth/token", json={"email": "admin@example.com", "password": ADMIN_PASSWORD}
        )

    assert result.returncode == 0, f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    listing, order, orders = printed_documents(result.stdout)
    assert listing["items"], result.stdout
    assert all("mug" in (item["name"] + item["sku"]).lower() for item in listing["items"])
    assert order["status"] == "placed", order
    assert [line["product_id"] for line in order["items"]] == [listing["items"][0]["id"]]
    assert [placed["id"] for placed in orders["items"]] == [order["id"]]
    assert admin_login.status_code == 200, "the administrator the README creates cannot log in"
