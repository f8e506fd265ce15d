"""The shop's public HTTP API as one whole, whichever contexts a process serves.

A process registers the endpoints of the contexts it serves (:func:`register_endpoints`). The
API as clients see it through a gateway is all of them together: :func:`whole_api` registers
every context's endpoints on an app of its own that never serves a request, so that any
process can describe the whole API (``/openapi.json``, ``shop openapi``) and ``shop gateway``
can tell which context serves which path — both from the blueprints themselves, never from a
list kept beside them.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

from flask import Flask

from app import ops
from app.registry import REGISTRY

API_PREFIX = "/api/v1"


@functools.cache
def http_modules() -> dict[str, ModuleType]:
    """Each context's module of public endpoints, by context, for the contexts that serve some,
    in the order of the registry."""
    return {context.name: importlib.import_module(context.http) for context in REGISTRY if context.http is not None}


def register_endpoints(app: Flask, contexts: tuple[str, ...]) -> list[ModuleType]:
    """Register the public endpoints of ``contexts`` on ``app``, in the order of
    the registry (the document lists operations in registration order where paths tie); the
    modules registered, for wiring."""
    served = [module for context, module in http_modules().items() if context in contexts]
    for module in served:
        app.register_blueprint(module.bp, url_prefix=API_PREFIX)
    return served


@functools.cache
def whole_api() -> Flask:
    """An app holding every public endpoint, registered as a process serving every context
    registers them, and the operations endpoints every process serves. Never served: its views
    are only read (their declarations, their URL rules)."""
    app = Flask(__name__, static_folder=None)
    register_endpoints(app, tuple(http_modules()))
    app.register_blueprint(ops.bp)
    return app


def context_of_endpoint(endpoint: str) -> str | None:
    """The context whose public blueprint holds ``endpoint`` (``"product.get_product"``), or
    None for the endpoints every process serves."""
    blueprint = endpoint.split(".", 1)[0]
    return next((context for context, module in http_modules().items() if module.bp.name == blueprint), None)
