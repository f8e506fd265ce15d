"""No import-linter contract is vacuous: each boundary of ARCHITECTURE.md catches a violation planted against it.

Every case copies the source tree, appends one forbidden import to one module and runs ``lint-imports`` on the
copy. It must exit non-zero and report the contract that guards that boundary as BROKEN, naming the planted
import (importer, imported module and the line it was planted on). The unmodified copy must keep every contract.
"""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONFIG = "importlinter.ini"
CONTRACT_SECTION = "importlinter:contract:"


@dataclass(frozen=True)
class Violation:
    """``module`` gains the line ``import <imports>``, which the contract with id ``contract`` must reject."""

    module: str
    imports: str
    contract: str


VIOLATIONS = [
    pytest.param(
        Violation("contexts.order.application.handlers", "contexts.product.domain.model", "contexts-independent"),
        id="context-imports-another-contexts-internals",
    ),
    pytest.param(
        Violation("contexts.user.adapters.repository", "contexts.order.adapters.orm", "contexts-independent"),
        id="context-adapters-import-another-contexts-adapters",
    ),
    pytest.param(
        Violation("contexts.product.api", "sqlalchemy", "published-modules-stdlib-only"),
        id="api-imports-third-party-package",
    ),
    pytest.param(
        Violation("contexts.order.events", "infrastructure", "published-modules-stdlib-only"),
        id="events-imports-infrastructure",
    ),
    pytest.param(
        Violation("infrastructure.db.database", "contexts.user.api", "top-level-layers"),
        id="infrastructure-imports-a-context",
    ),
    pytest.param(
        Violation("contexts.user.http", "app.config", "top-level-layers"),
        id="context-imports-app",
    ),
    pytest.param(
        Violation("contexts.user.domain.model", "contexts.user.application.ports", "context-layers"),
        id="domain-imports-application",
    ),
    pytest.param(
        Violation("contexts.product.application.handlers", "contexts.product.adapters.repository", "context-layers"),
        id="application-imports-adapters",
    ),
    pytest.param(
        Violation("contexts.order.adapters.repository", "contexts.order.http", "context-layers"),
        id="adapters-import-http",
    ),
    pytest.param(
        Violation("contexts.product.container", "contexts.product.http", "context-layers"),
        id="container-imports-http",
    ),
    pytest.param(
        Violation("contexts.user.api", "contexts.user.domain.model", "context-layers"),
        id="api-imports-domain",
    ),
    pytest.param(
        Violation("contexts.product.client", "contexts.product.application.facade", "published-client"),
        id="client-imports-its-contexts-internals",
    ),
    pytest.param(
        Violation("contexts.product.domain.model", "flask", "domain-pure"),
        id="domain-imports-flask",
    ),
    pytest.param(
        Violation("contexts.order.domain.model", "sqlalchemy", "domain-pure"),
        id="domain-imports-sqlalchemy",
    ),
    pytest.param(
        Violation("contexts.user.domain.model", "infrastructure.events", "domain-pure"),
        id="domain-imports-infrastructure",
    ),
    pytest.param(
        Violation("contexts.user.application.handlers", "flask", "application-not-web"),
        id="application-imports-flask",
    ),
    pytest.param(
        Violation("contexts.order.application.handlers", "infrastructure.db.database", "application-not-web"),
        id="application-imports-infrastructure-db",
    ),
]


def contract_names(root: Path) -> dict[str, str]:
    """Contract id -> the name lint-imports prints, as declared in the copy's config."""
    parser = configparser.ConfigParser()
    parser.read(root / CONFIG, encoding="utf-8")
    return {
        section.removeprefix(CONTRACT_SECTION): parser[section]["name"]
        for section in parser.sections()
        if section.startswith(CONTRACT_SECTION)
    }


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the tree at ``root``: its cwd and PYTHONPATH, so grimp finds the copy first."""
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "1000", "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", CONFIG, "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def module_path(root: Path, module: str) -> Path:
    base = root.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def plant(root: Path, module: str, imports: str) -> int:
    """Append ``import <imports>`` to an existing module of the copy; return the line it landed on."""
    path = module_path(root, module)
    text = path.read_text(encoding="utf-8")  # fails if the module no longer exists: update the case
    if text and not text.endswith("\n"):
        text += "\n"
    text += f"import {imports}  # planted by tests/architecture\n"
    path.write_text(text, encoding="utf-8")
    return len(text.splitlines())


def summary_status(output: str, name: str) -> str | None:
    """KEPT or BROKEN as the summary reports contract ``name``; None if it is not listed."""
    match = re.search(rf"^{re.escape(name)} (KEPT|BROKEN)\b", output, flags=re.MULTILINE)
    return match.group(1) if match else None


def broken_report(output: str, name: str, all_names: list[str]) -> str:
    """The details lint-imports prints under the heading of broken contract ``name``."""
    _, marker, details = output.partition("Broken contracts\n----------------\n")
    assert marker, f"no 'Broken contracts' section in:\n{output}"

    def heading_at(contract: str) -> int:
        return details.find(f"\n{contract}\n{'-' * len(contract)}\n")

    start = heading_at(name)
    assert start >= 0, f"contract {name!r} has no report in:\n{output}"
    following = [position for other in all_names if (position := heading_at(other)) > start]
    return details[start : min(following, default=len(details))]


def normalise(text: str) -> str:
    return " ".join(text.split())


def test_lint_imports_is_installed_next_to_the_interpreter() -> None:
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS} missing: install the dev extra (pip install -e '.[dev]')"


def test_unmodified_copy_keeps_every_contract(pristine_copy: Path) -> None:
    names = contract_names(pristine_copy)
    assert len(names) >= 6, names

    result = lint_imports(pristine_copy)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(names)} kept, 0 broken." in result.stdout, result.stdout
    for name in names.values():
        assert summary_status(result.stdout, name) == "KEPT", f"{name!r} not KEPT in:\n{result.stdout}"


def test_lint_imports_analyses_the_copy_not_the_installed_package(project_copy: Path) -> None:
    """A violation in a module that exists only in the copy is reported, so the copy is what grimp reads."""
    only_in_copy = project_copy / "contexts" / "order" / "application" / "planted_only_in_copy.py"
    only_in_copy.write_text("import contexts.product.domain.model\n", encoding="utf-8")
    name = contract_names(project_copy)["contexts-independent"]

    result = lint_imports(project_copy)

    assert result.returncode != 0, result.stdout + result.stderr
    assert summary_status(result.stdout, name) == "BROKEN", result.stdout
    expected = "contexts.order.application.planted_only_in_copy -> contexts.product.domain.model (l.1)"
    assert expected in normalise(result.stdout), result.stdout


@pytest.mark.parametrize("violation", VIOLATIONS)
def test_planted_violation_breaks_its_contract(project_copy: Path, violation: Violation) -> None:
    names = contract_names(project_copy)
    assert violation.contract in names, f"no contract {violation.contract!r} in {CONFIG}: {sorted(names)}"
    name = names[violation.contract]
    line = plant(project_copy, violation.module, violation.imports)

    result = lint_imports(project_copy)

    assert result.returncode != 0, f"lint-imports passed despite the planted import:\n{result.stdout}{result.stderr}"
    assert summary_status(result.stdout, name) == "BROKEN", f"{name!r} not BROKEN in:\n{result.stdout}"
    report = normalise(broken_report(result.stdout, name, list(names.values())))
    # The planted line number proves the report comes from the copy, not from the installed tree.
    assert f"{violation.module} -> {violation.imports} (l.{line})" in report, result.stdout
