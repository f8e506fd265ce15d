"""Every response carries the security headers, errors included; a view may set its own
Content-Security-Policy (an HTML page needs one); responses to credentialed requests and token
responses are never cached; HSTS only when configured; and no CORS at all unless origins are
configured, then only for exactly those origins, on the API."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from pydantic import ValidationError
from werkzeug.test import TestResponse

from app.factory import create_app
from tests.conftest import MakeApp, settings_for

API = "/api/v1"
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
ALLOWED = "https://shop.example.com"
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID")


@pytest.fixture
def client(make_app: MakeApp) -> FlaskClient:
    return make_app().test_client()


def bearer(client: FlaskClient) -> dict[str, str]:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    body = {"email": email, "password": "correct horse", "name": "Some One"}
    assert client.post(f"{API}/users", json=body).status_code == 201
    response = client.post(f"{API}/auth/token", json={"email": email, "password": "correct horse"})
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json['access_token']}"}  # type: ignore[index]


def cors_headers(response: TestResponse) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.lower().startswith("access-control-")}


REQUESTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "200 ops": ("GET", "/healthz", {}),
    "201 created": (
        "POST",
        f"{API}/users",
        {"json": {"email": "headers@example.com", "password": "correct horse", "name": "H"}},
    ),
    "400 invalid body": ("POST", f"{API}/auth/token", {"data": b"{"}),
    "401 no token": ("GET", f"{API}/users/me", {}),
    "404 unknown path": ("GET", "/nowhere", {}),
    "405 wrong method": ("DELETE", f"{API}/auth/token", {}),
    "automatic OPTIONS": ("OPTIONS", f"{API}/users", {}),
}


@pytest.mark.parametrize("kind", REQUESTS)
def test_every_response_carries_the_security_headers(client: FlaskClient, kind: str) -> None:
    method, path, options = REQUESTS[kind]
    response = client.open(path, method=method, **options)

    assert str(response.status_code) in kind or kind == "automatic OPTIONS", response.status_code
    for name, value in ALWAYS.items():
        assert response.headers.get(name) == value, name
    assert response.headers["Content-Security-Policy"] == API_POLICY
    assert "Strict-Transport-Security" not in response.headers


def test_a_bug_answered_with_500_carries_them_too(make_app: MakeApp) -> None:
    app = make_app()

    @app.get("/test-only/bug")
    def bug() -> str:
        raise RuntimeError("a planted bug")

    response = app.test_client().get("/test-only/bug")

    assert response.status_code == 500
    assert all(response.headers.get(name) == value for name, value in ALWAYS.items())
    assert response.headers["Content-Security-Policy"] == API_POLICY


def test_a_view_can_set_its_own_content_security_policy(make_app: MakeApp) -> None:
    """How an HTML page (the API docs) gets a policy that lets it load its own scripts."""
    app = make_app()
    page_policy = "default-src 'none'; script-src 'self'; style-src 'self'; frame-ancestors 'none'"

    @app.get("/test-only/page")
    def page() -> tuple[str, int, dict[str, str]]:
        return "<!doctype html><p>hi</p>", 200, {"Content-Security-Policy": page_policy}

    response = app.test_client().get("/test-only/page")

    assert response.headers.getlist("Content-Security-Policy") == [page_policy]
    assert all(response.headers.get(name) == value for name, value in ALWAYS.items())


def test_responses_to_credentialed_requests_are_not_stored(client: FlaskClient) -> None:
    headers = bearer(client)

    assert client.get(f"{API}/users/me", headers=headers).headers.get("Cache-Control") == "no-store"
    refused = client.get(f"{API}/users/me", headers={"Authorization": "Bearer not-a-token"})
    assert refused.status_code == 401 and refused.headers.get("Cache-Control") == "no-store"
    assert client.get("/healthz", headers=headers).headers.get("Cache-Control") == "no-store"
    # Without credentials, no such constraint is added.
    assert "no-store" not in client.get("/healthz").headers.get("Cache-Control", "")


def test_no_store_overrides_what_a_view_said_about_caching(make_app: MakeApp) -> None:
    app = make_app()

    @app.get("/test-only/cacheable")
    def cacheable() -> tuple[dict[str, str], int, dict[str, str]]:
        return {"ok": "yes"}, 200, {"Cache-Control": "public, max-age=600"}

    client = app.test_client()
    assert client.get("/test-only/cacheable").headers["Cache-Control"] == "public, max-age=600"
    credentialed = client.get("/test-only/cacheable", headers={"Authorization": "Bearer x"})
    assert credentialed.headers.getlist("Cache-Control") == ["no-store"]


def test_token_responses_are_not_stored(client: FlaskClient) -> None:
    """RFC 6749 §5.1: the login request has no Authorization header, yet its answer is a credential."""
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    client.post(f"{API}/users", json={"email": email, "password": "correct horse", "name": "T"})

    issued = client.post(f"{API}/auth/token", json={"email": email, "password": "correct horse"})
    refused = client.post(f"{API}/auth/token", json={"email": email, "password": "wrong horse"})

    assert issued.status_code == 200 and issued.headers.get("Cache-Control") == "no-store"
    assert refused.status_code == 401 and refused.headers.get("Cache-Control") == "no-store"


def test_hsts_is_sent_only_when_configured(make_app: MakeApp) -> None:
    client = make_app(hsts_seconds=31536000).test_client()

    for response in (client.get("/healthz"), client.get("/nowhere"), client.get(f"{API}/users/me")):
        assert response.headers.get("Strict-Transport-Security") == "max-age=31536000"


@pytest.mark.parametrize(
    ("method", "path"),
    [("OPTIONS", f"{API}/auth/token"), ("POST", f"{API}/auth/token"), ("GET", f"{API}/products"), ("GET", "/healthz")],
)
def test_by_default_no_origin_gets_cors_headers(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(
        path,
        method=method,
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        json={"email": "x@example.com", "password": "x"} if method == "POST" else None,
    )

    assert response.status_code < 500
    assert cors_headers(response) == {}


def preflight(client: FlaskClient, origin: str, path: str = f"{API}/orders") -> TestResponse:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": ", ".join(header.lower() for header in CORS_REQUEST_HEADERS),
        },
    )


def test_a_configured_origin_gets_its_preflight_answered(make_app: MakeApp) -> None:
    client = make_app(cors_allowed_origins=f"{ALLOWED}, http://localhost:5173").test_client()

    for origin in (ALLOWED, "http://localhost:5173", "HTTPS://SHOP.EXAMPLE.COM"):
        response = preflight(client, origin)
        assert response.status_code == 200
        assert response.headers.get("Access-Control-Allow-Origin") == origin
        allowed = {header.strip().lower() for header in response.headers["Access-Control-Allow-Headers"].split(",")}
        assert allowed == {header.lower() for header in CORS_REQUEST_HEADERS}
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "Origin" in response.headers.get("Vary", "")
        assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "http://shop.example.com",
        "https://shop.example.com:8443",
        "https://shop.example.com.evil.test",
        "https://shop-example.com",
        "https://xshop.example.com",
        "null",
    ],
)
def test_another_origin_gets_no_cors_headers(make_app: MakeApp, origin: str) -> None:
    client = make_app(cors_allowed_origins=ALLOWED).test_client()

    response = preflight(client, origin)

    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Headers" not in response.headers


def test_a_headers_not_allowed_is_not_granted(make_app: MakeApp) -> None:
    client = make_app(cors_allowed_origins=ALLOWED).test_client()

    response = client.options(
        f"{API}/orders",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-evil",
        },
    )

    assert "x-evil" not in response.headers.get("Access-Control-Allow-Headers", "").lower()


def test_an_allowed_origin_can_read_the_exposed_headers(make_app: MakeApp) -> None:
    client = make_app(cors_allowed_origins=ALLOWED).test_client()

    response = client.post(
        f"{API}/users",
        json={"email": "cors@example.com", "password": "correct horse", "name": "C"},
        headers={"Origin": ALLOWED},
    )

    assert response.status_code == 201
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = {header.strip() for header in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"Location", "X-Request-ID", "Retry-After"}


def test_cors_covers_the_api_only(make_app: MakeApp) -> None:
    client = make_app(cors_allowed_origins=ALLOWED).test_client()

    assert cors_headers(client.get("/healthz", headers={"Origin": ALLOWED})) == {}
    assert client.get(f"{API}/products", headers={"Origin": ALLOWED}).headers["Access-Control-Allow-Origin"] == ALLOWED


def test_a_lone_star_allows_any_origin_without_credentials(make_app: MakeApp) -> None:
    client = make_app(cors_allowed_origins="*").test_client()

    response = preflight(client, "https://anyone.example.net")

    assert response.headers.get("Access-Control-Allow-Origin") == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_preflights_do_not_use_up_the_login_budget(make_app: MakeApp) -> None:
    client = make_app(cors_allowed_origins=ALLOWED, login_rate_limit_per_address="1/minute").test_client()

    for _ in range(3):
        assert preflight(client, ALLOWED, f"{API}/auth/token").headers["Access-Control-Allow-Origin"] == ALLOWED
    assert client.post(f"{API}/auth/token", json={"email": "x@example.com", "password": "x"}).status_code == 401


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("hsts_seconds", -1),
        ("hsts_seconds", "a year"),
        ("cors_allowed_origins", "shop.example.com"),
        ("cors_allowed_origins", "https://shop.example.com/"),
        ("cors_allowed_origins", "https://shop.example.com/app"),
        ("cors_allowed_origins", "https://*.example.com"),
        ("cors_allowed_origins", f"{ALLOWED},*"),
        ("cors_allowed_origins", "ftp://shop.example.com"),
    ],
)
def test_a_bad_setting_stops_start_up_naming_it(tmp_path: Path, setting: str, value: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        create_app(settings_for(tmp_path / "instance", **{setting: value}))
    assert setting in str(raised.value)


# --- what /docs/static serves -----------------------------------------------------------------


def test_the_docs_serve_the_files_their_page_loads(client: FlaskClient) -> None:
    page = client.get("/docs").get_data(as_text=True)
    loaded = re.findall(r'(?:href|src)="(/docs/static/[^"]+)"', page)
    assert loaded
    for path in loaded:
        response = client.get(path)
        response.close()  # a file response: its file stays open until closed
        assert response.status_code == 200, path


@pytest.mark.parametrize(
    "filename",
    [
        "index.html",
        "index.j2",
        "swagger-initializer.js",
        "swagger-ui-bundle.js.map",
        "swagger-ui.css.map",
        "oauth2-redirect.html",
        "swagger-ui-es-bundle.js",
        "../__init__.py",
    ],
)
def test_the_docs_serve_nothing_else_of_the_package(client: FlaskClient, filename: str) -> None:
    response = client.get(f"/docs/static/{filename}")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
