"""``shop serve`` behind a real reverse proxy (nginx): per-address limits see the client.

nginx, running the configuration ``shop gateway nginx`` generates, appends the address it was
connected from to ``X-Forwarded-For``, as proxies do; with
``TRUSTED_PROXY_HOPS=1`` the shop counts logins by that address, and whatever a client wrote
into the header itself is ignored. With ``0`` the header is ignored altogether: behind a proxy
every client then shares the proxy's budget, and no forged header gets anyone out of it.

Clients come from different loopback addresses (all of 127.0.0.0/8 is local on Linux), so
nginx really sees several clients. Skips, saying so, when nginx is not installed
(``apt-get install nginx-light``; ``.ci/run`` installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import prepare_instance
from tests.e2e.nginx import nginx_gateway, nginx_or_skip
from tests.e2e.server import API, REQUEST_TIMEOUT, ShopServer, shop_env

pytestmark = pytest.mark.slow

# Loopback addresses the clients connect from: three different clients, as nginx sees them.
ALICE, BOB, MALLORY = "127.0.0.2", "127.0.0.3", "127.0.0.4"
PER_ADDRESS = 3
LIMITS = {
    "LOGIN_RATE_LIMIT_PER_ADDRESS": f"{PER_ADDRESS}/minute",
    "LOGIN_RATE_LIMIT_PER_ACCOUNT": "1000/minute",
}


@contextmanager
def shop_behind_nginx(tmp_path: Path, hops: int, options: tuple[str, ...] = ()) -> Iterator[str]:
    """The shop, trusting ``hops`` proxies, behind the gateway ``shop gateway nginx`` generates
    (for a shop that trusts its one hop: with ``hops=0`` the two disagree, as they would if an
    operator forgot the setting in the shop)."""
    nginx_or_skip()
    env = shop_env(tmp_path / "instance", TRUSTED_PROXY_HOPS=str(hops), WEB_WORKERS="1", **LIMITS)
    prepare_instance(tmp_path / "instance")
    with (
        ShopServer(env, tmp_path / "server.log", options=options) as server,
        nginx_gateway([server.url], tmp_path / "nginx", env={**env, "TRUSTED_PROXY_HOPS": "1"}) as url,
    ):
        yield url


def login(url: str, client_address: str, forwarded_for: str | None = None) -> int:
    """A wrong login from ``client_address``, perhaps with a forged X-Forwarded-For; its status."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    transport = httpx.HTTPTransport(local_address=client_address)
    with httpx.Client(base_url=url, transport=transport, timeout=REQUEST_TIMEOUT) as client:
        response = client.post(
            f"{API}/auth/token", json={"email": "nobody@example.com", "password": "wrong guess"}, headers=headers
        )
    return response.status_code


@pytest.mark.parametrize("options", [(), ("--prod",)], ids=["serve", "serve --prod"])
def test_with_one_trusted_hop_each_client_behind_the_proxy_has_its_own_budget(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    with shop_behind_nginx(tmp_path, hops=1, options=options) as url:
        alice = [login(url, ALICE) for _ in range(PER_ADDRESS + 1)]
        bob = login(url, BOB)
        # What Mallory writes into the header herself is not what the proxy saw: no escape.
        mallory = [login(url, MALLORY, forwarded_for=f"10.0.0.{n}") for n in range(PER_ADDRESS + 1)]

    assert alice == [401] * PER_ADDRESS + [429]
    assert bob == 401, "another client is not locked out by the first one's failures"
    assert mallory == [401] * PER_ADDRESS + [429]


def test_with_no_trusted_hop_a_forged_forwarded_for_does_not_escape_the_budget(tmp_path: Path) -> None:
    with shop_behind_nginx(tmp_path, hops=0) as url:
        forged = [login(url, MALLORY, forwarded_for=f"10.0.0.{n}") for n in range(PER_ADDRESS + 1)]
        other = login(url, ALICE)

    assert forged == [401] * PER_ADDRESS + [429]
    # Without trusted hops the shop sees only the proxy: every client shares its budget.
    assert other == 429
