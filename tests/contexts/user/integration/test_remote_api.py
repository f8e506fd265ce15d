"""Item 8 of issue 12 across a split: a process that does not serve the user context checks
every bearer token at the user service (USER_SERVICE_URL, internal endpoints behind the
service token), remembers each answer for TOKEN_SUBJECT_CACHE_SECONDS, and answers 503 — never
accepts the token as signed — when the user service cannot be asked.

Before, such a process trusted a token's signed subject and role until it expired: an unknown
user's token created products, and a demoted admin stayed admin.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import pytest
from flask import Flask
from pydantic import ValidationError

from app.config import read_settings, settings_problems
from app.factory import container_of
from contexts.user.application.handlers import RegisterUser
from contexts.user.client import RemoteUserApi
from contexts.user.domain.model import Role
from infrastructure.auth.tokens import Principal
from tests.conftest import MakeApp, set_role
from tests.http_servers import dead_url, serve_app
from tests.problems import assert_problem

API = "/api/v1"
SERVICE_TOKEN = "remote-user-test-service-token-0123456789"
SECRET = "remote-user-test-signing-secret-0123456789"
APART = {
    "events_broker_url": "amqp://guest:guest@127.0.0.1:5672//",  # never connected to here
    "service_token": SERVICE_TOKEN,
    "token_secret": SECRET,
}
PASSWORD = "correct horse"


def problems_of(**settings: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        read_settings(settings)
    return settings_problems(raised.value)


class CountingService:
    """The user service, counting the requests it is asked (the cache's proof)."""

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app
        self.requests: list[str] = []

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        self.requests.append(environ.get("PATH_INFO", ""))
        return self._app(environ, start_response)


def user_service(make_app: MakeApp, **settings: Any) -> Flask:
    return make_app(served_contexts="user,notification,audit", **{**APART, **settings})


def product_service(make_app: MakeApp, user_url: str, **settings: Any) -> Flask:
    return make_app(served_contexts="product", user_service_url=user_url, **{**APART, **settings})


def add_user(app: Flask, role: Role = Role.CUSTOMER) -> tuple[uuid.UUID, str]:
    email = f"{uuid.uuid4().hex[:12]}@example.com"
    user = container_of(app).user.register_user()(RegisterUser(email=email, password=PASSWORD, name="Ada", role=role))
    return user.id, email


def login(app: Flask, email: str) -> dict[str, str]:
    response = app.test_client().post(f"{API}/auth/token", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {response.json['access_token']}"}  # type: ignore[index]


def bearer_for(app: Flask, user_id: uuid.UUID, role: str) -> dict[str, str]:
    """A genuine token, signed with the secret every service shares."""
    token = container_of(app).tokens().issue(Principal(user_id=user_id, role=role))
    return {"Authorization": f"Bearer {token.access_token}"}


def new_product() -> dict[str, Any]:
    return {"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "Mug", "price": "5.00", "initial_stock": 3}


def close_user_api(app: Flask) -> None:
    api = container_of(app).user_api().inner
    assert isinstance(api, RemoteUserApi)
    api.close()


# --- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("served", "named"),
    [
        ("product", "product"),
        ("order", "order"),
        ("audit", "audit"),
        ("recommendation", "recommendation"),
        ("product,order,recommendation", "product, order and recommendation"),
    ],
)
def test_a_process_taking_bearer_tokens_without_the_user_context_needs_the_user_service_url(
    served: str, named: str
) -> None:
    problems = problems_of(served_contexts=served, product_service_url="http://product:8000", **APART)
    assert problems.splitlines() == [f"  USER_SERVICE_URL: required: this process serves {named} but not user"]


def test_a_process_taking_no_bearer_tokens_needs_no_user_service() -> None:
    settings = read_settings({"served_contexts": "notification", **APART})
    assert settings.user_service_url is None


def test_a_user_service_url_needs_a_service_token_and_a_token_secret() -> None:
    problems = problems_of(user_service_url="http://user:8000")
    assert "SERVICE_TOKEN: required when USER_SERVICE_URL is set" in problems
    assert "TOKEN_SECRET: required when contexts are served apart" in problems


def test_the_user_service_needs_a_service_token_for_the_contexts_served_elsewhere() -> None:
    problems = problems_of(served_contexts="user", events_broker_url=APART["events_broker_url"], token_secret=SECRET)
    assert (
        "SERVICE_TOKEN: required: this process serves user to product, order, audit and recommendation served"
        " elsewhere" in problems
    )


@pytest.mark.parametrize("url", ["ftp://user", "http://", "http://u:p@user", "http://user/?q=1"])
def test_a_bad_user_service_url_is_refused_by_name(url: str) -> None:
    problems = problems_of(user_service_url=url, **APART)
    assert problems.strip().startswith("USER_SERVICE_URL:"), problems
    assert "u:p" not in problems


def test_the_user_service_url_is_kept_without_a_trailing_slash() -> None:
    assert read_settings({"user_service_url": "https://shop.internal/user/", **APART}).user_service_url == (
        "https://shop.internal/user"
    )


# --- the internal endpoint ------------------------------------------------------------------


def test_the_internal_user_endpoint_answers_the_shops_services_only(make_app: MakeApp) -> None:
    app = user_service(make_app)
    user_id, email = add_user(app, Role.ADMIN)
    client = app.test_client()
    path = f"/internal/v1/user/users/{user_id}"
    service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}

    assert_problem(client.get(path), 401)
    assert_problem(client.get(path, headers=login(app, email)), 401)  # a user's token is no service token
    assert_problem(client.get(path, headers={"Authorization": "Bearer " + "x" * 40}), 401)

    answer = client.get(path, headers=service)
    assert answer.status_code == 200
    assert answer.json is not None
    assert {key: answer.json[key] for key in ("id", "email", "role")} == {
        "id": str(user_id),
        "email": email,
        "role": "admin",
    }
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        refused = assert_problem(client.get(f"/internal/v1/user/users/{unknown}", headers=service), 404)
        assert refused["code"] == "user_not_found"
    access = client.get("/internal/v1/user/access", headers=service)
    assert access.status_code == 200
    assert access.json == {
        "signing_key_id": container_of(app).tokens().key_id,
        "accepted_key_ids": sorted(container_of(app).tokens().accepted_key_ids),
    }


def test_the_internal_user_endpoints_stay_out_of_the_public_openapi_document(make_app: MakeApp) -> None:
    paths = user_service(make_app).test_client().get("/openapi.json").json["paths"]  # type: ignore[index]
    assert "/api/v1/users" in paths
    assert not [path for path in paths if path.startswith("/internal")]


# --- a process that does not serve the user context -----------------------------------------


def test_where_the_user_context_is_served_elsewhere_an_unknown_users_token_is_refused(make_app: MakeApp) -> None:
    """Before: a signed token for a user id nobody has created products as an admin."""
    users = user_service(make_app)
    with serve_app(users) as user_url:
        products = product_service(make_app, user_url)
        ghost = bearer_for(products, uuid.uuid4(), "admin")
        created = products.test_client().post(f"{API}/products", json=new_product(), headers=ghost)
        close_user_api(products)

    problem = assert_problem(created, 401)
    assert "does not exist" in problem["detail"]
    assert created.headers["WWW-Authenticate"].startswith("Bearer")


def test_where_the_user_context_is_served_elsewhere_a_demoted_admin_loses_admin_rights_within_the_cache_period(
    make_app: MakeApp,
) -> None:
    users = user_service(make_app)
    _, email = add_user(users, Role.ADMIN)
    admin = login(users, email)
    counting = CountingService(users)
    with serve_app(counting) as user_url:
        products = product_service(make_app, user_url, token_subject_cache_seconds=1)
        client = products.test_client()
        as_admin = [client.post(f"{API}/products", json=new_product(), headers=admin).status_code for _ in range(3)]
        asked_while_remembered = len(counting.requests)

        set_role(users, email, Role.CUSTOMER)
        time.sleep(1.1)
        demoted = client.post(f"{API}/products", json=new_product(), headers=admin)
        close_user_api(products)

    assert as_admin == [201, 201, 201]
    assert asked_while_remembered == 1, counting.requests  # remembered: not one call per request
    assert_problem(demoted, 403)


def test_where_the_user_service_is_down_a_token_is_a_503_problem_not_an_acceptance(make_app: MakeApp) -> None:
    products = product_service(make_app, dead_url(), remote_attempts=1)
    client = products.test_client()
    admin = bearer_for(products, uuid.uuid4(), "admin")

    created = client.post(f"{API}/products", json=new_product(), headers=admin)
    listed = client.get(f"{API}/products")  # public: needs no user service
    close_user_api(products)

    problem = assert_problem(created, 503)
    assert problem["detail"] == "the user service is unavailable; try again shortly"
    assert created.headers["Retry-After"].isdigit()
    assert listed.status_code == 200
    assert listed.json["items"] == []  # type: ignore[index]


def test_a_user_service_that_refuses_our_service_token_is_a_503_naming_it_and_makes_us_unready(
    make_app: MakeApp,
) -> None:
    users = user_service(make_app, service_token="another-service-token-" + "x" * 20)
    with serve_app(users) as user_url:
        products = product_service(make_app, user_url)
        client = products.test_client()
        created = client.post(
            f"{API}/products", json=new_product(), headers=bearer_for(products, uuid.uuid4(), "admin")
        )
        ready = client.get("/readyz")
        close_user_api(products)

    assert "SERVICE_TOKEN" in assert_problem(created, 503)["detail"]
    readiness = assert_problem(ready, 503)
    assert readiness["services"] == {"user": "misconfigured"}


def test_readiness_names_a_user_service_url_that_leads_to_no_internal_endpoints(make_app: MakeApp) -> None:
    """Say, the URL of the monolith, which has no SERVICE_TOKEN and so no internal endpoints."""
    with serve_app(make_app()) as user_url:
        products = product_service(make_app, user_url)
        ready = products.test_client().get("/readyz")
        close_user_api(products)

    assert "USER_SERVICE_URL does not lead to a user service" in assert_problem(ready, 503)["detail"]


def test_readiness_checks_the_user_service_takes_our_calls(make_app: MakeApp) -> None:
    with serve_app(user_service(make_app)) as user_url:
        products = product_service(make_app, user_url)
        assert products.test_client().get("/readyz").status_code == 200
        close_user_api(products)
