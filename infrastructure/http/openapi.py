"""Endpoints declared once: the declaration enforces access, validates the request and
documents the operation in the OpenAPI 3.1 document, so the three cannot disagree.

A view decorated with :func:`endpoint` receives its validated ``body`` and ``query`` as
keyword arguments. :func:`build_document` walks an app's URL map and describes every
declared endpoint, with the pydantic models' JSON Schemas as components, and the
:class:`Link` objects that say how a response feeds the next call (clients and fuzzers such
as Schemathesis follow them: create a product, order it, read the order, cancel it).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import wraps
from http import HTTPStatus
from typing import Any, ParamSpec, TypeVar

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from infrastructure.auth.bearer import current_principal
from infrastructure.http.problems import Problem
from infrastructure.http.rate_limit import MARKS as THROTTLE_MARKS
from infrastructure.http.schemas import ProblemDetails
from infrastructure.http.validation import parse_body, parse_query

P = ParamSpec("P")
R = TypeVar("R")

ATTRIBUTE = "__openapi_operation__"
BEARER = "bearer"
_REF = "#/components/schemas/{model}"
_PATH_PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


class Access(Enum):
    PUBLIC = "public"
    CUSTOMER = "any authenticated user"
    ADMIN = "administrators"


@dataclass(frozen=True)
class Header:
    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: the operation a response leads to, and how its inputs come from it.

    Values are runtime expressions such as ``"$response.body#/id"``, or literals; in
    ``request_body`` they may be nested inside a literal JSON value (Schemathesis fills them in).
    """

    operation_id: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    request_body: Any = None
    description: str = ""

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"operationId": self.operation_id}
        if self.parameters:
            document["parameters"] = dict(self.parameters)
        if self.request_body is not None:
            document["requestBody"] = copy.deepcopy(self.request_body)
        if self.description:
            document["description"] = self.description
        return document


@dataclass(frozen=True)
class Operation:
    summary: str
    description: str
    tag: str
    access: Access
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    responses: Mapping[int, type[BaseModel]]
    errors: frozenset[int]
    request_headers: tuple[Header, ...]
    response_headers: Mapping[int, tuple[Header, ...]]
    example: Mapping[str, Any] | None
    links: Mapping[int, Mapping[str, Link]] = field(default_factory=dict)


def endpoint(
    *,
    summary: str,
    tag: str,
    responses: Mapping[int, type[BaseModel]],
    access: Access = Access.PUBLIC,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    errors: Sequence[int] = (),
    request_headers: Sequence[Header] = (),
    response_headers: Mapping[int, Sequence[Header]] | None = None,
    description: str = "",
    example: Mapping[str, Any] | None = None,
    links: Mapping[int, Mapping[str, Link]] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare an operation. Place it directly under the route decorator.

    Access is checked first (401/403 before any 400), then the query and body are validated
    and passed to the view as ``query=`` and ``body=``. Statuses implied by the declaration
    (400, 401, 403, 413, 503 for a lost database, and 429 for a view marked with
    :func:`~infrastructure.http.rate_limit.throttle` below this decorator) are documented
    without being listed. ``links`` are keyed by the status of the response they start from.
    """
    undeclared = set((links or {}).keys()) - set(responses.keys())
    if undeclared:
        raise ValueError(f"links from statuses with no declared response: {sorted(undeclared)}")
    implied = {503}
    if body is not None or query is not None:
        implied.add(400)
    if body is not None:
        implied.add(413)
    if access is not Access.PUBLIC:
        implied.add(401)
    if access is Access.ADMIN:
        implied.add(403)
    operation = Operation(
        summary=summary,
        description=description,
        tag=tag,
        access=access,
        body=body,
        query=query,
        responses=dict(responses),
        errors=frozenset(implied | set(errors)),
        request_headers=tuple(request_headers),
        response_headers={status: tuple(headers) for status, headers in (response_headers or {}).items()},
        example=example,
        links={status: dict(named) for status, named in (links or {}).items()},
    )

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        declared = operation
        if getattr(view, THROTTLE_MARKS, ()):
            declared = replace(operation, errors=operation.errors | {429})

        @wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if access is not Access.PUBLIC:
                principal = current_principal()
                if access is Access.ADMIN and not principal.is_admin:
                    raise Problem(403, "this operation is for administrators")
            if query is not None:
                kwargs["query"] = parse_query(query)
            if body is not None:
                kwargs["body"] = parse_body(body)
            return view(*args, **kwargs)

        setattr(wrapper, ATTRIBUTE, declared)
        return wrapper

    return decorate


def build_document(app: Flask, *, title: str, version: str, description: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every endpoint of ``app`` declared with :func:`endpoint`."""
    declared: list[tuple[str, str, Operation, str]] = []
    for url_rule in sorted(app.url_map.iter_rules(), key=lambda url_rule: url_rule.rule):
        declaration = getattr(app.view_functions[url_rule.endpoint], ATTRIBUTE, None)
        if declaration is None:
            continue
        for method in sorted((url_rule.methods or set()) - {"HEAD", "OPTIONS"}):
            declared.append((url_rule.rule, method.lower(), declaration, url_rule.endpoint))

    models = _models(operation for _, _, operation, _ in declared)
    _, schemas = models_json_schema(models, ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for rule, method, operation, endpoint_name in declared:
        path = _PATH_PARAMETER.sub(r"{\1}", rule)
        paths.setdefault(path, {})[method] = _operation(rule, operation, endpoint_name)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def _models(operations: Iterable[Operation]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    found: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ProblemDetails, "serialization"): None}
    for operation in operations:
        if operation.body is not None:
            found[(operation.body, "validation")] = None
        for model in operation.responses.values():
            found[(model, "serialization")] = None
    return list(found)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _operation(rule: str, operation: Operation, endpoint_name: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "operationId": endpoint_name.replace(".", "_"),
        "summary": operation.summary,
        "tags": [operation.tag],
        "parameters": _parameters(rule, operation),
        "responses": _responses(operation),
    }
    if operation.description or operation.access is not Access.PUBLIC:
        who = "" if operation.access is Access.PUBLIC else f"For {operation.access.value}."
        document["description"] = " ".join(part for part in (operation.description, who) if part)
    if operation.access is not Access.PUBLIC:
        document["security"] = [{BEARER: []}]
    if operation.body is not None:
        content: dict[str, Any] = {"schema": _ref(operation.body)}
        if operation.example is not None:
            content["example"] = dict(operation.example)
        document["requestBody"] = {"required": True, "content": {"application/json": content}}
    return document


def _parameters(rule: str, operation: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
        for name in _PATH_PARAMETER.findall(rule)
    ]
    if operation.query is not None:
        schema = operation.query.model_json_schema(ref_template=_REF)
        required = set(schema.get("required", []))
        for name, property_schema in schema.get("properties", {}).items():
            parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            if "description" in property_schema:
                parameter["description"] = property_schema["description"]
            parameter["schema"] = _without_null(property_schema)
            parameters.append(parameter)
    parameters.extend(
        {
            "name": header.name,
            "in": "header",
            "required": header.required,
            "description": header.description,
            "schema": dict(header.schema),
        }
        for header in operation.request_headers
    )
    return parameters


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent rather than null: ``anyOf [X, null]`` is documented as X."""
    options = [option for option in schema.get("anyOf", []) if option != {"type": "null"}]
    if len(options) != 1:
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf" and (key, value) != ("default", None)}
    return {**options[0], **rest}


REQUEST_ID_HEADER = {
    "X-Request-ID": {
        "description": "the request's id, as sent if it was sane, else generated",
        "schema": {"type": "string"},
    }
}


def _responses(operation: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, model in sorted(operation.responses.items()):
        response: dict[str, Any] = {
            "description": HTTPStatus(status).phrase,
            "headers": dict(REQUEST_ID_HEADER),
            "content": {"application/json": {"schema": _ref(model)}},
        }
        for header in operation.response_headers.get(status, ()):
            response["headers"][header.name] = {"description": header.description, "schema": dict(header.schema)}
        if operation.links.get(status):
            response["links"] = {name: link.to_document() for name, link in operation.links[status].items()}
        responses[str(status)] = response
    for status in sorted(operation.errors - operation.responses.keys()):
        response = {
            "description": HTTPStatus(status).phrase,
            "headers": dict(REQUEST_ID_HEADER),
            "content": {"application/problem+json": {"schema": _ref(ProblemDetails)}},
        }
        if status in (429, 503):
            response["headers"]["Retry-After"] = {
                "description": "seconds to wait before retrying",
                "schema": {"type": "integer"},
            }
        responses[str(status)] = response
    return responses
