"""``--context NAME`` (``make test-context CONTEXT=NAME``): one context's tests alone, the contexts
it calls present only through their fakes.

Selected: the tests marked ``context(NAME)``, its use cases and rules on in-memory fakes
(``tests/unit/fakes/``), and the contract tests that hold the fakes of the contexts it calls
(the registry's ``calls``) to the published contract, beside the real facades and remote
clients (``tests/contract/``): what the context was tested against behaves as what it will
meet. Everything else is deselected.
"""

from __future__ import annotations

import pytest

from app.registry import BY_NAME, CONTEXTS

FAKE = "fake"  # the harness parameter of a contract test run against a fake (tests/contract/conftest.py)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--context",
        choices=CONTEXTS,
        help="run only this context's tests, the contexts it calls present through their fakes",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    name: str | None = config.getoption("context")
    if name is None:
        return
    harnesses = {f"{called}_harness" for called in BY_NAME[name].calls}

    def selected(item: pytest.Item) -> bool:
        marker = item.get_closest_marker("context")
        if marker is not None:
            return bool(marker.args[0] == name)
        spec = getattr(item, "callspec", None)
        return spec is not None and any(spec.params.get(harness) == FAKE for harness in harnesses)

    kept = [item for item in items if selected(item)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if not selected(item)])
        items[:] = kept
