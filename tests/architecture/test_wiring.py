"""Wiring injects into the view functions of the http modules and looks at nothing else.

``app/factory.py`` has dependency-injector skip classes when it wires (they are request and
response models, and walking their members cost most of every app's wiring). That is safe only
while no class in a wired module takes an injection: such a view or attribute would silently
receive the marker instead of what it asks for. These tests hold every wired module to it.
"""

from __future__ import annotations

import inspect
import types
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import pytest
from dependency_injector.wiring import Closing, Provide, Provider

from app.public_api import http_modules

MARKERS = (Provide, Provider, Closing)
PROJECT = ("app.", "contexts.", "infrastructure.", "tests.")


def _is_marker(value: Any) -> bool:
    return isinstance(value, MARKERS)  # type: ignore[arg-type]  # the stubs type the marker classes as markers


def _injects(function: Any) -> bool:
    """Whether ``function``, one of the project's, asks for an injection: a marker as a
    parameter's default or in its ``Annotated`` metadata. A library's function takes none of
    the project's injections (and its hints may not resolve outside the library)."""
    if not function.__module__.startswith(PROJECT):
        return False
    parameters = inspect.signature(function).parameters.values()
    hints = get_type_hints(function, include_extras=True)
    annotated = [hint for hint in hints.values() if get_origin(hint) is Annotated]
    return any(_is_marker(p.default) for p in parameters) or any(
        _is_marker(extra) for hint in annotated for extra in get_args(hint)[1:]
    )


def injected_classes(module: types.ModuleType) -> list[str]:
    """``Class.member`` for every class in ``module``'s namespace whose attribute is a marker
    or whose method asks for an injection."""
    found = []
    for class_name, member in vars(module).items():
        if not inspect.isclass(member):
            continue
        for name, attribute in inspect.getmembers(member):
            if _is_marker(attribute) or (inspect.isfunction(attribute) and _injects(attribute)):
                found.append(f"{class_name}.{name}")
    return found


@pytest.mark.parametrize("context", list(http_modules()))
def test_no_class_of_a_wired_module_takes_an_injection(context: str) -> None:
    module = http_modules()[context]
    assert injected_classes(module) == [], f"{module.__name__}: views are functions (STYLE.md)"
    assert any(_injects(member) for member in vars(module).values() if inspect.isfunction(member)), (
        f"{module.__name__} injects into no function: the check above looks at the wrong module"
    )


def test_the_check_finds_an_injection_in_a_class() -> None:
    planted = types.ModuleType("planted")

    class ClassBasedView:
        handler = Provide["product.get_product"]

        def get(self, get: Any = Provide["product.get_product"]) -> None: ...

        def put(self, put: Annotated[Any, Provide["product.revise_product"]]) -> None: ...

        def head(self) -> None: ...

    planted.ClassBasedView = ClassBasedView  # type: ignore[attr-defined]
    assert injected_classes(planted) == ["ClassBasedView.get", "ClassBasedView.handler", "ClassBasedView.put"]
