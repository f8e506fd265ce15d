"""The API describing itself: ``/openapi.json`` and Swagger UI at ``/docs``.

Swagger UI's files come from an installed package (swagger-ui-bundle-v2) and are served by
the app itself, so the docs work on a machine with no internet access.
"""

from __future__ import annotations

import functools
from importlib.metadata import version
from typing import Any

import swagger_ui_bundle
from flask import Blueprint, Response, send_from_directory

from app.public_api import whole_api
from infrastructure.http.openapi import build_document
from infrastructure.http.problems import Problem

bp = Blueprint("api_docs", __name__)
TITLE = "modular-shop API"
DESCRIPTION = (
    "An online shop: users, a product catalog with inventory, and orders. Money is a two-place decimal "
    "string, ids are UUIDs, times are RFC 3339 UTC. Errors are RFC 9457 problem details."
)

# The files of the package the page below loads, and the only ones served: the package also
# holds a demo index.html, templates and source maps, which are none of a visitor's business.
_STYLESHEET = "swagger-ui.css"
_SCRIPT = "swagger-ui-bundle.js"
_SERVED = frozenset({_STYLESHEET, _SCRIPT})

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>modular-shop API</title>
  <link rel="stylesheet" href="/docs/static/{_STYLESHEET}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/{_SCRIPT}"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""

_INIT = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
"""

# Swagger UI runs scripts and styles of its own origin and fetches the document; nothing else.
_DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The whole public API, whichever contexts this process serves: behind a gateway clients
    see one API whatever process answers them, so every process describes all of it, the same
    document a process serving every context does. Built once per process."""
    return build_document(whole_api(), title=TITLE, version=version("modular-shop"), description=DESCRIPTION)


def _with_policy(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _DOCS_POLICY
    return response


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    return openapi_document()


@bp.get("/docs")
def docs() -> Response:
    return _with_policy(Response(_PAGE, mimetype="text/html"))


@bp.get("/docs/init.js")
def docs_init() -> Response:
    return _with_policy(Response(_INIT, mimetype="text/javascript"))


@bp.get("/docs/static/<path:filename>")
def docs_static(filename: str) -> Response:
    if filename not in _SERVED:
        raise Problem(404, "no such file of the API documentation")
    return _with_policy(send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=3600))
