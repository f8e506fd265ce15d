"""Item 8 of issue 12 across real processes: wherever a context taking bearer tokens runs apart
from the user context, the token's user and role are checked at the user service
(USER_SERVICE_URL): an unknown user's token is refused, a demoted admin loses admin rights
within TOKEN_SUBJECT_CACHE_SECONDS, and while the user service is down those requests are 503
problems, not acceptances. Before, such a process trusted the token as signed until it expired.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from infrastructure.auth.tokens import Principal, TokenService
from tests.conftest import Backend, amqp_url_or_skip
from tests.e2e.server import API, REQUEST_TIMEOUT, bearer, register
from tests.e2e.topology import Topology, running_topology

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("rabbitmq")]

CACHE_SECONDS = 1.0
PASSWORD = "correct horse"


def forged_by_a_deleted_user(topology: Topology) -> dict[str, str]:
    """A genuine admin token, signed with the shared secret, for a user id nobody has."""
    tokens = TokenService(topology.service_for("product").env["TOKEN_SECRET"], ttl=timedelta(minutes=10))
    token = tokens.issue(Principal(user_id=uuid.uuid4(), role="admin"))
    return {"Authorization": f"Bearer {token.access_token}"}


def set_role(topology: Topology, email: str, role: str) -> None:
    (changed,) = topology.rows(
        "user", "UPDATE user_users SET role = :role WHERE email = :email RETURNING id", role=role, email=email
    )
    assert changed


def new_product() -> dict[str, object]:
    return {"sku": f"SKU-{uuid.uuid4().hex[:8]}", "name": "Mug", "price": "5.00", "initial_stock": 1}


def after_the_cache() -> None:
    time.sleep(CACHE_SECONDS + 0.2)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("topology_name", ["product_extracted", "all_apart"])
def test_services_apart_from_the_user_context_check_each_tokens_user_and_role(
    topology_name: str, backend: Backend, tmp_path: Path
) -> None:
    settings = {"TOKEN_SUBJECT_CACHE_SECONDS": str(CACHE_SECONDS)}
    with (
        running_topology(
            topology_name, tmp_path, amqp_url=amqp_url_or_skip(), settings=settings, migrated_by="the test"
        ) as topology,
        httpx.Client(base_url=topology.url, timeout=REQUEST_TIMEOUT) as client,
    ):
        ghost = forged_by_a_deleted_user(topology)
        assert client.post(f"{API}/products", json=new_product(), headers=ghost).status_code == 401
        assert client.get(f"{API}/audit-log", headers=ghost).status_code == 401

        email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
        register(client, email, PASSWORD)
        set_role(topology, email, "admin")
        admin = bearer(client, email, PASSWORD)  # signed "admin"; the record says so too
        assert client.post(f"{API}/products", json=new_product(), headers=admin).status_code == 201
        assert client.get(f"{API}/audit-log", headers=admin).status_code == 200

        set_role(topology, email, "customer")
        after_the_cache()
        assert client.post(f"{API}/products", json=new_product(), headers=admin).status_code == 403
        assert client.get(f"{API}/audit-log", headers=admin).status_code == 403

        topology.kill("user")
        after_the_cache()
        refused = client.post(f"{API}/products", json=new_product(), headers=admin)
        listed = client.get(f"{API}/products")
        topology.start_again("user")  # the topology is expected whole when it is stopped

    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["detail"] == "the user service is unavailable; try again shortly"
    assert listed.status_code == 200, "public endpoints need no user service"
