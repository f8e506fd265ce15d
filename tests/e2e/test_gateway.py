"""The gateway ``shop gateway nginx`` generates, run by a real nginx in front of recording servers.

Each process of a placement is a server that records what reaches it, so a test sees where
nginx sent a request and with which headers, and that what it must refuse never reached any of
them. The shop itself behind the generated gateway is tested in ``test_topologies.py`` (the three
topologies' scenario) and ``test_reverse_proxy.py`` (``TRUSTED_PROXY_HOPS``).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.registry import CONTEXTS
from tests.e2e.nginx import nginx_gateway
from tests.e2e.server import REQUEST_TIMEOUT, shop_env
from tests.http_servers import Answer, ScriptedServer, SilentServer, dead_url

pytestmark = pytest.mark.slow

CLIENT = "127.0.0.2"  # the address nginx sees the test's client connect from
SETTINGS = {"TRUSTED_PROXY_HOPS": "1", "MAX_CONTENT_LENGTH": "2048"}
# Where each public path must go, one per route of the whole API (longest prefix wins).
EXPECTED = {
    "/api/v1/users": "user",
    "/api/v1/auth/token": "user",
    "/api/v1/users/me": "user",
    "/api/v1/admin/users": "user",
    "/api/v1/users/me/recommendations": "recommendation",
    "/api/v1/products": "product",
    "/api/v1/products/0b5f6a9e-6f4d-4f4e-9a51-1d3f3c0e2a11/stock-adjustments": "product",
    "/api/v1/orders": "order",
    "/api/v1/orders/0b5f6a9e-6f4d-4f4e-9a51-1d3f3c0e2a11/cancel": "order",
    "/api/v1/admin/orders": "order",
    "/api/v1/audit-log": "audit",
}


@dataclass
class Placed:
    url: str
    servers: dict[str, ScriptedServer]  # context → the server standing for its process

    def reached(self) -> dict[str, list[str]]:
        """Context → the paths (with query) that reached its process."""
        return {context: [received.path for received in server.received] for context, server in self.servers.items()}


@contextmanager
def every_context_apart(tmp_path: Path, **settings: str) -> Iterator[Placed]:
    """A recording server per context, the first (user) also answering what no context owns."""
    with ExitStack() as stack:
        servers = {context: stack.enter_context(ScriptedServer()) for context in CONTEXTS}
        env = shop_env(tmp_path / "instance", **{**SETTINGS, **settings})
        upstreams = [f"{context}={server.url}" for context, server in servers.items()]
        url = stack.enter_context(nginx_gateway(upstreams, tmp_path / "nginx", env=env))
        yield Placed(url, servers)


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT, transport=httpx.HTTPTransport(local_address=CLIENT))


def raw_get(url: str, target: str) -> int:
    """``GET target`` sent exactly as written (httpx would resolve dot segments first)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_each_public_path_goes_to_the_process_serving_its_context(tmp_path: Path) -> None:
    with every_context_apart(tmp_path) as placed, client(placed.url) as http:
        for path in EXPECTED:
            assert http.get(path, params={"limit": "5"}).status_code == 200, path
        for path in ("/openapi.json", "/docs", "/healthz", "/readyz"):
            assert http.get(path).status_code == 200, path

    reached = placed.reached()
    expected: dict[str, list[str]] = {context: [] for context in CONTEXTS}
    for path, context in EXPECTED.items():
        expected[context].append(f"{path}?limit=5")
    # What no context owns goes to the first upstream: every process describes the whole API.
    expected["user"] += ["/openapi.json", "/docs", "/healthz", "/readyz"]
    assert reached == expected


def test_internal_endpoints_are_refused_whatever_path_leads_there(tmp_path: Path) -> None:
    with every_context_apart(tmp_path) as placed, client(placed.url) as http:
        answer = http.get("/internal/v1/product/products", headers={"X-Request-ID": "probe-1"})
        statuses = [
            raw_get(placed.url, target)
            for target in (
                "/internal",
                "/internal/v1/user/users/0b5f6a9e-6f4d-4f4e-9a51-1d3f3c0e2a11",
                "//internal/v1/product/products",
                "/%69nternal/v1/product/products",
                "/api/v1/products/../../../internal/v1/product/products",
                "/api/v1/products/%2e%2e/%2e%2e/%2e%2e/internal/v1/product/products",
            )
        ]

    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["x-request-id"] == "probe-1"
    assert answer.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no such resource",
        "instance": "/internal/v1/product/products",
    }
    assert statuses == [404] * 6
    assert placed.reached() == {context: [] for context in CONTEXTS}, "nothing reached a process"


def test_the_client_address_scheme_and_request_id_are_passed_on(tmp_path: Path) -> None:
    with every_context_apart(tmp_path) as placed, client(placed.url) as http:
        # A client's own X-Forwarded-For and -Proto are kept left of what nginx appends / replaced.
        http.get("/api/v1/products", headers={"X-Forwarded-For": "10.9.9.9", "X-Forwarded-Proto": "https"})
        http.get("/api/v1/products", headers={"X-Request-ID": "client-chosen.id:1"})
        http.get("/api/v1/products", headers={"X-Request-ID": "not sane!"})

    forged, chosen, insane = (received.headers for received in placed.servers["product"].received)
    assert forged["X-Forwarded-For"] == f"10.9.9.9, {CLIENT}", "TRUSTED_PROXY_HOPS=1 reads the last entry"
    assert forged["X-Forwarded-Proto"] == "http"
    assert re.fullmatch(r"[0-9a-f]{32}", forged["X-Request-ID"]), "nginx makes one when the client sent none"
    assert chosen["X-Request-ID"] == "client-chosen.id:1"
    assert chosen["X-Forwarded-For"] == CLIENT
    assert re.fullmatch(r"[0-9a-f]{32}", insane["X-Request-ID"]), "an id the shop would refuse is replaced"
    assert "Connection" not in forged, "HTTP/1.1 without `Connection: close`: connections to the processes are kept"


def test_behind_another_proxy_the_scheme_it_was_told_is_passed_on(tmp_path: Path) -> None:
    with every_context_apart(tmp_path, TRUSTED_PROXY_HOPS="2") as placed, client(placed.url) as http:
        http.get("/api/v1/products", headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"})
        http.get("/api/v1/products")

    told, untold = (received.headers for received in placed.servers["product"].received)
    assert told["X-Forwarded-For"] == f"203.0.113.7, {CLIENT}"
    assert told["X-Forwarded-Proto"] == "https"
    assert untold["X-Forwarded-Proto"] == "http"


def test_nginx_own_refusals_and_failures_are_problem_details(tmp_path: Path) -> None:
    """A body over MAX_CONTENT_LENGTH, a process that is down, one that does not answer within
    WEB_TIMEOUT_SECONDS: the answer is the shop's kind, never nginx's HTML page."""
    with (
        SilentServer() as silent,
        ScriptedServer(then=Answer(201, {"id": "x"})) as product,
    ):
        env = shop_env(tmp_path / "instance", **SETTINGS, WEB_TIMEOUT_SECONDS="1")
        upstreams = [
            f"product={product.url}",
            f"order={dead_url()}",
            f"user,notification,audit,recommendation={silent.url}",
        ]
        with nginx_gateway(upstreams, tmp_path / "nginx", env=env) as url, client(url) as http:
            too_large = http.post("/api/v1/products", content=b"x" * 4096, headers={"Content-Type": "application/json"})
            fits = http.post("/api/v1/products", content=b"x" * 2048, headers={"Content-Type": "application/json"})
            down = http.get("/api/v1/orders")
            silent_answer = http.get("/api/v1/users/me")

    assert (too_large.status_code, too_large.json()["detail"]) == (413, "the request body is larger than allowed")
    assert fits.status_code == 201, "MAX_CONTENT_LENGTH itself is allowed"
    assert down.status_code == 503 and down.headers["retry-after"] == "5"
    assert silent_answer.status_code == 504
    for answer in (too_large, down, silent_answer):
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == answer.status_code
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])
        assert "nginx" not in answer.text


def raw_request(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """``request`` sent on a socket as written (no client would send a malformed one): the
    status, headers (lower-case names) and body of the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=REQUEST_TIMEOUT) as connection:
        connection.sendall(request)
        answer = http.client.HTTPResponse(connection)
        answer.begin()
        return answer.status, {name.lower(): value for name, value in answer.getheaders()}, answer.read()


def test_requests_nginx_refuses_to_read_are_answered_with_problem_details(tmp_path: Path) -> None:
    """A malformed request, a header over nginx's buffers (its 494), a request line over them:
    refused by nginx before any process sees them, as problem details, never its HTML page."""
    with every_context_apart(tmp_path) as placed:
        answers = {
            "malformed": raw_request(placed.url, b"GET /api/v1/products HTTP/1.1\r\nHost: shop\r\nno colon\r\n\r\n"),
            "header": raw_request(
                placed.url, b"GET /api/v1/products HTTP/1.1\r\nHost: shop\r\nX-Big: " + b"x" * 20000 + b"\r\n\r\n"
            ),
            "request line": raw_request(
                placed.url, b"GET /api/v1/products?q=" + b"x" * 20000 + b" HTTP/1.1\r\nHost: shop\r\n\r\n"
            ),
        }

    assert {what: status for what, (status, _, _) in answers.items()} == {
        "malformed": 400,
        "header": 400,
        "request line": 414,
    }
    for status, headers, body in answers.values():
        assert headers["content-type"] == "application/problem+json", body
        assert json.loads(body)["status"] == status
        assert b"nginx" not in body
    assert placed.reached() == {context: [] for context in CONTEXTS}
