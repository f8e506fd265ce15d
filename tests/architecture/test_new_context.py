"""Adding a context is a folder under ``contexts/`` and one entry in ``app/registry.py``.

The test copies the project, puts the wishlist context of ``seventh_context/`` at
``contexts/wishlist/``, adds its entry to the copy's registry and nothing else, and runs the copy:
its database is migrated, its endpoint served and documented, the users' ``UserRegistered``
events delivered to its subscriber, and the import-linter contracts hold it to the boundaries.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.architecture.conftest import IGNORED, REPOSITORY, copy_project
from tests.architecture.test_boundaries import contract_names, lint_imports, normalise, plant, summary_status

SEVENTH_CONTEXT = Path(__file__).parent / "seventh_context"

IMPORTS = """\
from contexts.wishlist.container import WishlistContainer
"""

ENTRY = """\
    Context(
        "wishlist",
        lambda shared: providers.Container(WishlistContainer, database=shared.database("wishlist")),
        http="contexts.wishlist.http",
        subscriptions=(
            Subscription(
                UserRegistered, "wishlist.open", WishlistContainer.when_user_registered_open_wishlist, batched=True
            ),
        ),
    ),
"""

# Run in the copy: migrate every context's database, serve a registration and the wishlist it
# opens, with the dispatcher delivering in the background as `shop serve` does.
SCENARIO = """\
import json, sys, time
from pathlib import Path

from app.containers import databases
from app.factory import container_of, create_app
from app.migrations import upgrade_all
from app.registry import CONTEXTS

instance = Path(sys.argv[1])
app = create_app({"instance_path": instance})
container = container_of(app)
upgrade_all(databases(container))
container.dispatcher().start()
client = app.test_client()
try:
    registered = client.post(
        "/api/v1/users", json={"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}
    )
    user_id = registered.get_json()["id"]
    deadline = time.monotonic() + 30
    wishlist = client.get(f"/api/v1/wishlists/{user_id}")
    while wishlist.status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.05)
        wishlist = client.get(f"/api/v1/wishlists/{user_id}")
    unknown = client.get("/api/v1/wishlists/not-an-id")
    document = client.get("/openapi.json").get_json()
finally:
    container.dispatcher().stop()
print(json.dumps({
    "contexts": list(CONTEXTS),
    "registered": registered.status_code,
    "user_id": user_id,
    "wishlist": [wishlist.status_code, wishlist.get_json()],
    "unknown": [unknown.status_code, unknown.content_type, unknown.get_json()["status"]],
    "documented": "/api/v1/wishlists/{owner_id}" in document["paths"],
    "migrated": sorted(p.name for p in instance.glob("*.db")),
}))
"""


@pytest.fixture(scope="module")
def copy_with_a_new_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("seventh"))
    shutil.copytree(SEVENTH_CONTEXT, root / "contexts" / "wishlist", ignore=IGNORED)
    registry = root / "app" / "registry.py"
    text = registry.read_text(encoding="utf-8")
    imports_at = text.index("from infrastructure.")
    closing = "\n)\n\nCONTEXTS"
    assert text.count(closing) == 1, "the registry's tuple no longer ends as this test expects"
    text = text[:imports_at] + IMPORTS + text[imports_at:]
    text = text.replace(closing, "\n" + ENTRY.rstrip("\n") + closing)
    registry.write_text(text, encoding="utf-8")
    return root


def run_in(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.endswith(("_DATABASE_URL", "DATABASE_URL"))}
    env.update(PYTHONPATH=str(root), SERVED_CONTEXTS="", EVENTS_BROKER_URL="")
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def differences(comparison: filecmp.dircmp[str], folder: str = "") -> list[str]:
    """Every file added, removed or changed in a tree comparison, as a path within it."""
    here = [*comparison.diff_files, *comparison.left_only, *comparison.right_only]
    below = [path for name, sub in sorted(comparison.subdirs.items()) for path in differences(sub, f"{folder}{name}/")]
    return [f"{folder}{name}" for name in sorted(here)] + below


def test_only_the_registry_of_app_changes(copy_with_a_new_context: Path) -> None:
    comparison = filecmp.dircmp(REPOSITORY / "app", copy_with_a_new_context / "app", ignore=["__pycache__"])

    assert differences(comparison) == ["registry.py"]


def test_the_new_context_is_migrated_served_and_takes_events(copy_with_a_new_context: Path, tmp_path: Path) -> None:
    result = run_in(copy_with_a_new_context, "-c", SCENARIO, str(tmp_path / "instance"))

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["contexts"][-1] == "wishlist"
    assert outcome["registered"] == 201
    assert outcome["wishlist"] == [200, {"owner_id": outcome["user_id"], "title": "Ada's wishlist"}]
    assert outcome["unknown"] == [404, "application/problem+json", 404]
    assert outcome["documented"] is True
    assert "wishlist.db" in outcome["migrated"]


def test_the_boundaries_cover_the_new_context(copy_with_a_new_context: Path, tmp_path: Path) -> None:
    kept = lint_imports(copy_with_a_new_context)
    assert kept.returncode == 0, kept.stdout + kept.stderr

    planted = tmp_path / "planted"
    shutil.copytree(copy_with_a_new_context, planted)
    names = contract_names(planted)
    line = plant(planted, "contexts.wishlist.application.handlers", "contexts.order.domain.model")
    broken = lint_imports(planted)

    assert summary_status(broken.stdout, names["contexts-independent"]) == "BROKEN", broken.stdout
    expected = f"contexts.wishlist.application.handlers -> contexts.order.domain.model (l.{line})"
    assert expected in normalise(broken.stdout), broken.stdout
