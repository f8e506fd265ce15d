"""What the shop believes of the headers reverse proxies set (``TRUSTED_PROXY_HOPS``): the
client's address from ``X-Forwarded-For``, that many entries from the end, and the scheme from
the nearest proxy's ``X-Forwarded-Proto``, which proxies replace rather than append to.
tests/e2e/test_reverse_proxy.py checks the address through a real nginx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request, url_for

from tests.conftest import start_app, stop_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """An app behind two trusted proxies, with a route that shows how it sees a request."""
    app = start_app(tmp_path / "instance", trusted_proxy_hops=2)

    @app.get("/seen")
    def seen() -> dict[str, Any]:
        return {"scheme": request.scheme, "url": url_for("seen", _external=True), "client": request.remote_addr}

    yield app
    stop_app(app)


def test_with_several_hops_the_nearest_proxys_scheme_is_believed(app: Flask) -> None:
    """Before, two hops wanted two values, and the one an nginx sends was ignored: ``http``."""
    response = app.test_client().get(
        "/seen",
        headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7, 10.0.0.2", "X-Forwarded-Proto": "https"},
        environ_base={"REMOTE_ADDR": "10.0.0.3"},
    )

    seen = response.json
    assert seen is not None
    assert seen["scheme"] == "https"
    assert seen["url"].startswith("https://")
    assert seen["client"] == "198.51.100.7"
