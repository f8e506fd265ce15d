"""``--context NAME`` (``make test-context CONTEXT=NAME``): one context's tests alone, the contexts
it calls present only through their fakes.

Selected: the context's unit tests (``tests/contexts/NAME/unit/``: its use cases and rules on the
in-memory fakes of ``tests/fakes/``), and the contract tests that hold the fakes of the contexts
it calls (the registry's ``calls``) to the published contract, beside the real facades and
remote clients (``tests/contexts/<called>/contract/``, their ``fake`` runs): what the context was
tested against behaves as what it will meet. The rest of ``tests/contexts`` is not collected;
anything else the command line names is deselected.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.registry import BY_NAME, CONTEXTS

FAKE = "fake"  # the harness parameter of a contract test run against a fake (tests/contexts/conftest.py)
CONTEXT_TESTS = Path(__file__).resolve().parent / "contexts"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--context",
        choices=CONTEXTS,
        help="run only this context's unit tests, the contexts it calls present through their contract-tested fakes",
    )


def runs_a_fake(item: pytest.Item) -> bool:
    """Whether ``item`` is a contract test run against a fake (its harness parameter ``fake``)."""
    spec = getattr(item, "callspec", None)
    return spec is not None and FAKE in spec.params.values()


def keep_only(config: pytest.Config, items: list[pytest.Item], keep: Callable[[pytest.Item], bool]) -> None:
    """Deselect, as pytest reports it, every item ``keep`` refuses."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (kept if keep(item) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def selected_folders(name: str) -> tuple[Path, list[Path]]:
    """The context's unit tests, and the contract tests of the contexts it calls."""
    return CONTEXT_TESTS / name / "unit", [CONTEXT_TESTS / called / "contract" for called in BY_NAME[name].calls]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``tests/contexts``, not even import what ``--context`` leaves out: the other
    contexts' tests and this one's integration tests (and seconds of collecting them)."""
    name: str | None = config.getoption("context")
    if name is None or collection_path == CONTEXT_TESTS or not collection_path.is_relative_to(CONTEXT_TESTS):
        return None
    own, faked = selected_folders(name)
    wanted = [own, *faked]
    if any(collection_path.is_relative_to(folder) or folder.is_relative_to(collection_path) for folder in wanted):
        return None
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    name: str | None = config.getoption("context")
    if name is None:
        return
    own, faked = selected_folders(name)

    def selected(item: pytest.Item) -> bool:
        return item.path.is_relative_to(own) or (
            runs_a_fake(item) and any(item.path.is_relative_to(folder) for folder in faked)
        )

    keep_only(config, items, selected)
