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
from types import ModuleType

from flask import Flask

from app import ops
from contexts.audit import http as audit_http
from contexts.order import http as order_http
from contexts.product import http as product_http
from contexts.recommendation import http as recommendation_http
from contexts.user import http as user_http

API_PREFIX = "/api/v1"
# Each context's public endpoints (notification serves none), registered where it is served.
HTTP_MODULES: dict[str, ModuleType] = {
    "user": user_http,
    "product": product_http,
    "order": order_http,
    "audit": audit_http,
    "recommendation": recommendation_http,
}


def register_endpoints(app: Flask, contexts: tuple[str, ...]) -> list[ModuleType]:
    """Register the public endpoints of ``contexts`` on ``app``, in the order of
    ``HTTP_MODULES`` (the document lists operations in registration order where paths tie);
    the modules registered, for wiring."""
    served = [module for context, module in HTTP_MODULES.items() if context in contexts]
    for module in served:
        app.register_blueprint(module.bp, url_prefix=API_PREFIX)
    return served


@functools.cache
def whole_api() -> Flask:
    """An app holding every public endpoint, registered as a process serving every context
    registers them, and the operations endpoints every process serves. Never served: its views
    are only read (their declarations, their URL rules)."""
    app = Flask(__name__, static_folder=None)
    register_endpoints(app, tuple(HTTP_MODULES))
    app.register_blueprint(ops.bp)
    return app


def context_of_endpoint(endpoint: str) -> str | None:
    """The context whose public blueprint holds ``endpoint`` (``"product.get_product"``), or
    None for the endpoints every process serves."""
    blueprint = endpoint.split(".", 1)[0]
    return next((context for context, module in HTTP_MODULES.items() if module.bp.name == blueprint), None)
