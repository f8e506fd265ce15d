"""Wiring injects into the view functions of the http modules and looks at nothing else.

``app/factory.py`` has dependency-injector skip classes when it wires (they are request and
response models, and walking their members cost most of every app's wiring). That is safe only
while no class in a wired module takes an injection: a marker as a class attribute (assigned or
only annotated), or in a method not decorated with ``@inject``, would be left as it is and
handed to the code instead of what it asks for. These tests hold every wired module to it.
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


def _marked(hint: Any) -> bool:
    """Whether an annotation is ``Annotated`` with a marker in its metadata."""
    origin: object = get_origin(hint)
    return origin is Annotated and any(_is_marker(extra) for extra in get_args(hint)[1:])


def _injects(function: Any) -> bool:
    """Whether ``function``, one of the project's, asks for an injection: a marker as a
    parameter's default or in its ``Annotated`` metadata. A library's function takes none of
    the project's injections (and its hints may not resolve outside the library)."""
    if not function.__module__.startswith(PROJECT):
        return False
    parameters = inspect.signature(function).parameters.values()
    hints = get_type_hints(function, include_extras=True)
    return any(_is_marker(p.default) for p in parameters) or any(map(_marked, hints.values()))


def injected_classes(module: types.ModuleType) -> list[str]:
    """``Class.member`` for every class in ``module``'s namespace with a marker as an attribute,
    assigned or in an ``Annotated`` annotation, or with a method (class and static methods
    included) that asks for an injection: what wiring a class would patch."""
    found = set()
    for class_name, member in vars(module).items():
        if not inspect.isclass(member):
            continue
        for name, attribute in inspect.getmembers(member):
            method = inspect.isfunction(attribute) or inspect.ismethod(attribute)
            if _is_marker(attribute) or (method and _injects(attribute)):
                found.add(f"{class_name}.{name}")
        for klass in member.__mro__:
            if not klass.__module__.startswith(PROJECT):
                continue  # a library's annotations take none of the project's injections
            hints = inspect.get_annotations(klass, eval_str=True)
            found.update(f"{class_name}.{name}" for name, hint in hints.items() if _marked(hint))
    return sorted(found)


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

        lister: Annotated[Any, Provide["product.list_products"]]

        def get(self, get: Any = Provide["product.get_product"]) -> None: ...

        def put(self, put: Annotated[Any, Provide["product.revise_product"]]) -> None: ...

        @classmethod
        def post(cls, create: Any = Provide["product.create_product"]) -> None: ...

        @staticmethod
        def patch(adjust: Any = Provide["product.adjust_stock"]) -> None: ...

        def head(self) -> None: ...

    planted.ClassBasedView = ClassBasedView  # type: ignore[attr-defined]
    assert injected_classes(planted) == [
        f"ClassBasedView.{name}" for name in ("get", "handler", "lister", "patch", "post", "put")
    ]
