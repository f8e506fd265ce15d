"""What a real server does with a request, under ``shop serve`` (Werkzeug) and ``shop serve
--prod`` (gunicorn) alike: a chunked body over ``MAX_CONTENT_LENGTH`` is refused with 413 as
one that announced its length is (it used to be cut to the limit and served), and the
``Server`` header names no version."""

from __future__ import annotations

import http.client
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import prepare_instance
from tests.e2e.server import API, HOST, ShopServer, shop_env

pytestmark = pytest.mark.slow

LIMIT = 4096


@pytest.fixture(scope="module", params=["werkzeug", "gunicorn"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopServer]:
    folder: Path = tmp_path_factory.mktemp(request.param)
    env = shop_env(folder / "instance", MAX_CONTENT_LENGTH=str(LIMIT), WEB_WORKERS="1", WEB_THREADS="2")
    prepare_instance(folder / "instance")
    options = ("--prod",) if request.param == "gunicorn" else ()
    with ShopServer(env, folder / "server.log", options=options) as started:
        yield started


def _registration(padded_to: int) -> bytes:
    body = json.dumps({"email": f"{uuid.uuid4().hex[:10]}@example.com", "password": "long enough", "name": "N"})
    return body.encode().ljust(padded_to, b" ")


def _post_chunked(server: ShopServer, body: bytes) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(HOST, server.port, timeout=30)
    try:
        chunks = (body[start : start + 1000] for start in range(0, len(body), 1000))
        connection.request(
            "POST", f"{API}/users", body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_a_chunked_body_within_the_limit_is_served(server: ShopServer) -> None:
    status, _, body = _post_chunked(server, _registration(LIMIT))
    assert status == 201, body


@pytest.mark.parametrize("size", [LIMIT + 1, 3 * LIMIT, 3 * 1024 * 1024])
def test_a_chunked_body_over_the_limit_is_413(server: ShopServer, size: int) -> None:
    status, headers, body = _post_chunked(server, _registration(size))
    assert status == 413, body
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["status"] == 413


@pytest.mark.parametrize("path", ["/healthz", f"{API}/nowhere"])
def test_the_server_header_names_no_version(server: ShopServer, path: str) -> None:
    connection = http.client.HTTPConnection(HOST, server.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        servers = [value for name, value in response.getheaders() if name.lower() == "server"]
    finally:
        connection.close()
    assert servers, "no Server header"
    assert not any(re.search(r"[0-9]", value) for value in servers), servers
