"""The front door of a split shop: an nginx configuration for a placement (``shop gateway nginx``).

A placement says which contexts each process serves, in the words ``SERVED_CONTEXTS`` (and
``shop serve --contexts``) uses, read by the same function. Which paths go to which process is
read from the contexts' blueprints (:func:`routes`), so a new endpoint is routed where its
context is served without anyone editing a list. The timeouts, keep-alive and body limit come
from the shop's own settings, and the forwarded headers are what ``TRUSTED_PROXY_HOPS`` expects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

from flask import Flask

from app.config import Settings, named_contexts
from app.public_api import context_of_endpoint
from app.registry import CONTEXTS
from infrastructure.http.request_id import SANE_REQUEST_ID
from infrastructure.http.schemas import ProblemDetails
from infrastructure.remote.options import KEEPALIVE_MARGIN_SECONDS

INTERNAL_PREFIX = "/internal"
METRICS_PATH = "/metrics"
# Where nginx's answers to requests it could not read live (internal locations: no client reaches them).
UNREAD_PREFIX = "/_shop_unread_"
# What may stand for a host and port in the configuration: a name, IPv4 or bracketed IPv6 address.
# Names may hold "_": container and service names (product_service) do, and nginx resolves them.
_HOST = r"(?:[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])"
_SERVER = re.compile(rf"{_HOST}:[0-9]{{1,5}}")
_LISTEN = re.compile(rf"(?:{_HOST}:)?[0-9]{{1,5}}")
_VARIABLE = re.compile(r"<[^>]*>")
UNAVAILABLE_RETRY_AFTER_SECONDS = 5


class PlacementError(ValueError):
    """A placement the gateway cannot route: the message says what to fix."""


@dataclass(frozen=True)
class Upstream:
    """The processes serving one set of contexts: several servers share the load."""

    contexts: tuple[str, ...]
    servers: tuple[str, ...]  # host:port

    @property
    def name(self) -> str:
        return "shop_all" if self.contexts == CONTEXTS else "shop_" + "_".join(self.contexts)


@dataclass(frozen=True)
class Route:
    """Paths equal to ``prefix`` or under ``prefix/`` go to the process serving ``context``."""

    prefix: str
    context: str


def placement(upstreams: Sequence[str]) -> list[Upstream]:
    """``["product=http://10.0.0.2:8000", "user,order,…=http://10.0.0.3:8000"]`` → the upstreams,
    in the order given. ``CONTEXTS=`` is read as ``SERVED_CONTEXTS`` is (nothing before ``=``, or
    no ``=`` at all: every context, the monolith); the same contexts given again are another
    server of the same upstream. Each context is served by one upstream at most, and every
    context with public endpoints by one."""
    found: dict[tuple[str, ...], list[str]] = {}
    for option in upstreams:
        contexts_value, separator, url = option.partition("=")
        if not separator or "://" in contexts_value:  # a URL alone (which may hold an "=")
            contexts_value, url = "", option
        try:
            contexts = named_contexts(contexts_value)
        except ValueError as error:
            raise PlacementError(f"{option}: {error}") from None
        found.setdefault(contexts, []).append(_server(option, url))
    served: dict[str, tuple[str, ...]] = {}
    for contexts in found:
        for context in contexts:
            if context in served:
                raise PlacementError(
                    f"{context} is served by two upstreams ({','.join(served[context])} and {','.join(contexts)})"
                )
            served[context] = contexts
    routed = {route.context for route in routes()}
    missing = [context for context in CONTEXTS if context in routed and context not in served]
    if missing:
        raise PlacementError(f"no upstream serves {', '.join(missing)}: name each context's process with --upstream")
    return [Upstream(contexts, tuple(servers)) for contexts, servers in found.items()]


def _server(option: str, url: str) -> str:
    """``http://host:port`` → ``host:port``: nginx speaks plain HTTP to the shop's processes, at
    their root, as ``shop serve`` serves. Nothing else gets into the configuration; what does
    not fit is refused saying which part is wrong."""
    parts = urlsplit(url)
    host, colon, port = parts.netloc.rpartition(":")
    if parts.scheme != "http":
        problem = f"the scheme is {parts.scheme or 'missing'!r}, not http (nginx speaks plain HTTP to the shop)"
    elif "@" in parts.netloc:
        problem = "no credentials"
    elif parts.path not in ("", "/") or parts.query or parts.fragment:
        problem = "no path, query or fragment: the shop is served at the root"
    elif not colon or not port.isdigit() or not 0 < int(port) <= 65535:
        problem = "the port is missing or not a number from 1 to 65535"
    elif not _SERVER.fullmatch(parts.netloc):
        problem = (
            f"the host {host!r} is not a name (letters, digits, '.', '-', '_'), an IPv4 address or a"
            " bracketed IPv6 address"
        )
    else:
        return parts.netloc
    raise PlacementError(f"{option}: the upstream must be http://HOST:PORT: {problem}")


def routes(app: Flask | None = None) -> list[Route]:
    """The path prefixes of each context's public endpoints in ``app`` (by default the whole
    public API), as few as longest-prefix matching needs: a prefix where everything under it
    belongs to one context, and a deeper one where a path under it belongs to another
    (``/api/v1/users/me/recommendations`` inside ``/api/v1/users``). Endpoints of no context
    (``/healthz``, ``/readyz``, the documentation) are every process's: no route."""
    if app is None:
        from app.public_api import whole_api

        app = whole_api()
    trie = _Node()
    for rule in app.url_map.iter_rules():
        context = context_of_endpoint(rule.endpoint)
        if context is None:
            continue
        static = _VARIABLE.split(rule.rule, maxsplit=1)[0]
        node = trie
        for segment in (part for part in static.split("/") if part):
            node = node.children.setdefault(segment, _Node())
        node.contexts.add(context)
    found: list[Route] = []
    trie.emit("", None, found)
    return sorted(found, key=lambda route: route.prefix)


@dataclass
class _Node:
    """A path segment: the contexts of the endpoints whose static part ends here, and deeper."""

    contexts: set[str] = field(default_factory=set)
    children: dict[str, _Node] = field(default_factory=dict)

    def subtree(self) -> set[str]:
        found = set(self.contexts)
        for child in self.children.values():
            found |= child.subtree()
        return found

    def emit(self, path: str, inherited: str | None, found: list[Route]) -> None:
        """Routes for this node's subtree, where the prefix above it already sends paths to
        ``inherited``."""
        below = self.subtree()
        if below == {inherited}:
            return
        if path and len(below) == 1:
            found.append(Route(path, next(iter(below))))
            return
        if path and len(self.contexts) == 1:
            (own,) = self.contexts
            if own != inherited:
                found.append(Route(path, own))
            inherited = own
        elif self.contexts:
            raise PlacementError(f"{path} belongs to {', '.join(sorted(self.contexts))}: it cannot be routed")
        for segment, child in sorted(self.children.items()):
            child.emit(f"{path}/{segment}", inherited, found)


def nginx_config(upstreams: Sequence[Upstream], settings: Settings, *, listen: str) -> str:
    """The configuration, for nginx's ``http`` block (``/etc/nginx/conf.d/shop.conf``)."""
    if not _LISTEN.fullmatch(listen) or int(listen.rpartition(":")[2]) > 65535:
        raise PlacementError(f"--listen {listen}: must be PORT or HOST:PORT")
    hops = settings.trusted_proxy_hops
    if hops < 1:
        raise PlacementError(
            "TRUSTED_PROXY_HOPS is 0: the shop behind this gateway would count every client as the gateway's"
            " address; set TRUSTED_PROXY_HOPS=1 (nginx at the edge), plus one per proxy in front of it that"
            " appends to X-Forwarded-For, here and in every shop process"
        )
    by_context = {context: upstream for upstream in upstreams for context in upstream.contexts}
    default = upstreams[0]
    lines = [
        "# modular-shop gateway, generated by `shop gateway nginx`: include it in nginx's http block.",
        f"# Every shop process behind it runs with TRUSTED_PROXY_HOPS={hops}: this server appends the",
        "# address it was connected from to X-Forwarded-For"
        + (f", behind {hops - 1} more prox{'y' if hops == 2 else 'ies'} that do too." if hops > 1 else "."),
        "# Placement (SERVED_CONTEXTS of each process):",
        *(
            f"#   {upstream.name}: {','.join(upstream.contexts)} at {' '.join(upstream.servers)}"
            for upstream in upstreams
        ),
        "",
        "# The client's X-Request-ID when the shop would accept it, else a new one: the same id in",
        "# nginx's logs ($shop_request_id) and the shop's.",
        "map $http_x_request_id $shop_request_id {",
        f'    "~^{SANE_REQUEST_ID.pattern}$" $http_x_request_id;',
        "    default $request_id;",
        "}",
        "",
        "# A problem's instance is the path, when it is plain enough to quote in JSON.",
        "map $uri $shop_problem_instance {",
        '    "~^[A-Za-z0-9/._~:@-]*$" $uri;',
        '    default "";',
        "}",
    ]
    if hops > 1:
        lines += [
            "",
            "# The scheme as the proxy in front of this one was asked it (it ended TLS).",
            "map $http_x_forwarded_proto $shop_forwarded_proto {",
            '    "" $scheme;',
            "    default $http_x_forwarded_proto;",
            "}",
        ]
    for upstream in upstreams:
        lines += ["", f"upstream {upstream.name} {{", *(f"    server {server};" for server in upstream.servers)]
        lines += _keepalive(settings, len(upstream.servers))
        lines.append("}")
    lines += [
        "",
        "server {",
        f"    listen {listen};",
        "    server_tokens off;",
        f"    client_max_body_size {settings.max_content_length};  # MAX_CONTENT_LENGTH",
        "",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        "    proxy_set_header Host $host;",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        f"    proxy_set_header X-Forwarded-Proto {'$shop_forwarded_proto' if hops > 1 else '$scheme'};",
        "    proxy_set_header X-Request-ID $shop_request_id;",
        f"    proxy_connect_timeout {_seconds(settings.remote_connect_timeout_seconds)};"
        "  # REMOTE_CONNECT_TIMEOUT_SECONDS",
        f"    proxy_send_timeout {settings.web_timeout_seconds}s;  # WEB_TIMEOUT_SECONDS",
        f"    proxy_read_timeout {settings.web_timeout_seconds}s;  # WEB_TIMEOUT_SECONDS",
        "",
        "    # nginx's own refusals and failures, as the shop's: problem details. A request nginx",
        "    # could not read (494: a header too large, answered as 400) may have no URI, and nginx",
        "    # redirects such a one to a path only, never to a named location.",
        f"    error_page 400 494 = {UNREAD_PREFIX}bad_request;",
        "    error_page 413 = @shop_too_large;",
        f"    error_page 414 = {UNREAD_PREFIX}uri_too_long;",
        "    error_page 502 = @shop_unavailable;",
        "    error_page 504 = @shop_timed_out;",
        "    error_page 404 = @shop_not_found;",
        "",
        "    # The services' internal endpoints are theirs alone, whatever path leads there.",
        f"    location = {INTERNAL_PREFIX} {{ return 404; }}",
        f"    location ^~ {INTERNAL_PREFIX}/ {{ return 404; }}",
        "    # Each process's metrics are scraped from it directly (deploy/observability/): through here",
        "    # they would be one process's, and anyone's to read.",
        f"    location = {METRICS_PATH} {{ return 404; }}",
    ]
    for route in routes():
        upstream = by_context[route.context]
        lines += [
            "",
            f"    # {route.context}",
            f"    location = {route.prefix} {{ proxy_pass http://{upstream.name}; }}",
            f"    location {route.prefix}/ {{ proxy_pass http://{upstream.name}; }}",
        ]
    lines += [
        "",
        "    # The documentation (/openapi.json, /docs: every process describes the whole API), /healthz,",
        "    # /readyz, and any other path: the first upstream.",
        f"    location / {{ proxy_pass http://{default.name}; }}",
        *_problem_location("shop_not_found", 404, "no such resource"),
        *_problem_location("bad_request", 400, "the request is malformed, or a header of it is too large", unread=True),
        *_problem_location("shop_too_large", 413, "the request body is larger than allowed"),
        *_problem_location(
            "uri_too_long", 414, "the request line (path and query) is longer than allowed", unread=True
        ),
        *_problem_location(
            "shop_unavailable",
            503,
            "the service answering this path is unavailable; try again shortly",
            retry_after=UNAVAILABLE_RETRY_AFTER_SECONDS,
        ),
        *_problem_location("shop_timed_out", 504, "the service answering this path did not answer in time"),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _keepalive(settings: Settings, servers: int) -> list[str]:
    """Idle connections kept to an upstream: as many as its processes serve requests at once,
    each closed by nginx before the shop would close it (``WEB_KEEPALIVE_SECONDS``), so nginx
    never sends a request down a connection the shop is closing. None when the shop keeps
    idle connections too briefly for that.

    nginx is then a caller of the shop's processes like the shop's own services, so
    ``REMOTE_IDLE_CONNECTION_SECONDS``, when set and shorter, bounds its idle time too: it is
    set for a load balancer between callers and services that closes idle connections sooner
    than the shop would, and nginx's requests to the services pass the same way."""
    idle: float = settings.web_keepalive_seconds - KEEPALIVE_MARGIN_SECONDS
    if idle < 1:
        return ["    # WEB_KEEPALIVE_SECONDS is too short to reuse connections safely: none kept."]
    bound = "below WEB_KEEPALIVE_SECONDS"
    remote_idle = settings.remote_idle_connection_seconds
    if remote_idle is not None and remote_idle < idle:
        if remote_idle == 0:
            return ["    # REMOTE_IDLE_CONNECTION_SECONDS is 0: none kept."]
        idle, bound = max(remote_idle, 0.001), "REMOTE_IDLE_CONNECTION_SECONDS"
    connections = settings.web_workers * settings.web_threads * servers
    return [
        f"    keepalive {connections};  # WEB_WORKERS x WEB_THREADS per server",
        f"    keepalive_timeout {_seconds(idle)};  # {bound}",
    ]


def _problem_location(
    name: str, status: int, detail: str, *, retry_after: int | None = None, unread: bool = False
) -> Iterable[str]:
    """A named location answering ``status`` as the shop would: a problem document, with the
    request's id. ``unread``: for requests nginx could not read, an internal location at
    ``UNREAD_PREFIX + name`` instead, whose instance is empty (the path is unknown, or is the
    part that was too long)."""
    body = ProblemDetails(
        type="about:blank",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance="INSTANCE",
        errors=None,
        errors_omitted=None,
    ).model_dump_json(exclude_none=True)
    # nginx fills the variable in; its value is plain (see the map above).
    body = body.replace('"INSTANCE"', '""' if unread else '"$shop_problem_instance"')
    lines = [
        "",
        *(
            [f"    location = {UNREAD_PREFIX}{name} {{", "        internal;"]
            if unread
            else [f"    location @{name} {{"]
        ),
        "        default_type application/problem+json;",
        "        add_header X-Request-ID $shop_request_id always;",
        "        add_header X-Content-Type-Options nosniff always;",
    ]
    if retry_after is not None:
        lines.append(f"        add_header Retry-After {retry_after} always;")
    lines += [f"        return {status} {_quoted(body)};", "    }"]
    return lines


def _quoted(text: str) -> str:
    """``text`` as one nginx string: single quotes, with backslashes and quotes escaped."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _seconds(value: float) -> str:
    """A duration for nginx: whole seconds as ``5s``, fractions in milliseconds."""
    return f"{int(value)}s" if float(value).is_integer() else f"{round(value * 1000)}ms"
