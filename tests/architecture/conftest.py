"""Fixtures for the architecture tests: a private copy of the source tree that lint-imports may analyse and break."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
COPIED_PACKAGES = ("app", "contexts", "infrastructure")
CONFIG = "importlinter.ini"


IGNORED = shutil.ignore_patterns("__pycache__", ".import_linter_cache")


def copy_project(root: Path) -> Path:
    """Copy the root packages and the import-linter config to ``root``."""
    for package in COPIED_PACKAGES:
        shutil.copytree(REPOSITORY / package, root / package, ignore=IGNORED)
    shutil.copy2(REPOSITORY / CONFIG, root / CONFIG)
    return root


@pytest.fixture(scope="session")
def pristine_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root packages and the import-linter config, copied once per session and never modified."""
    return copy_project(tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def project_copy(pristine_copy: Path, tmp_path: Path) -> Path:
    """A fresh copy of the pristine tree that the test may plant violations in."""
    root = tmp_path / "project"
    shutil.copytree(pristine_copy, root)
    return root
