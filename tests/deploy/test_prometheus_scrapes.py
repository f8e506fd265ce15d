"""The real Prometheus scraping a real ``shop serve``, with the shipped configuration.

The monolith's scrape configuration as shipped, only pointed at this machine: its target the
server's port, its token file one holding the server's ``METRICS_TOKEN`` (so a scrape that did
not send it would be refused, and ``up`` would say 0), its rules the shipped ``alerts.yml``,
scraped and evaluated every second. A registration and a login through the HTTP API must then
show in Prometheus' query API under their route templates; every rule must evaluate without an
error, and so must every dashboard expression, against the series a real scrape made.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import prepare_instance
from tests.deploy.observability import (
    alerting_rules,
    api,
    dashboard_expressions,
    local_scrape_config,
    prometheus_or_skip,
    query,
    rule_groups,
    running_prometheus,
)
from tests.e2e.server import HOST, REQUEST_TIMEOUT, ShopServer, register, shop_env

pytestmark = pytest.mark.slow

JOB = "shop-monolith"
SERVICE = "monolith"
# Scrapes and evaluations come every second: a few of them.
SETTLE_TIMEOUT = 10.0
POLL_INTERVAL = 0.2


@dataclass(frozen=True)
class Scraped:
    shop: ShopServer
    prometheus: str  # its URL


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """A shop and the Prometheus scraping it, for the module's tests (one start-up of each)."""
    prometheus_or_skip()  # before the shop starts
    folder = tmp_path_factory.mktemp("prometheus_scrapes")
    token = secrets.token_urlsafe(48)
    token_file = folder / "shop-metrics-token"
    token_file.write_text(token)
    prepare_instance(folder / "instance")
    env = shop_env(folder / "instance", METRICS_TOKEN=token)
    with ShopServer(env, folder / "shop.log") as shop:
        config = local_scrape_config("monolith", {JOB: f"{HOST}:{shop.port}"}, token_file)
        with running_prometheus(config, folder / "prometheus") as prometheus:
            yield Scraped(shop, prometheus)


def _eventually(check: Callable[[], object], what: str) -> None:
    """Poll ``check`` (an assertion) until it passes; at the deadline, fail with its last error."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        try:
            check()
            return
        except AssertionError as error:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}, not within {SETTLE_TIMEOUT}s: {error}") from None
        time.sleep(POLL_INTERVAL)


def _values(prometheus: str, expr: str) -> list[float]:
    return sorted(float(sample["value"][1]) for sample in query(prometheus, expr))


def _wait_for(prometheus: str, expr: str, values: list[float]) -> None:
    """Until ``expr``'s samples have ``values``."""

    def check() -> None:
        got = _values(prometheus, expr)
        assert got == values, f"{expr} is {got}"

    _eventually(check, f"{expr} == {values}")


def test_prometheus_scrapes_the_shop_and_counts_its_requests_by_route(scraped: Scraped) -> None:
    with httpx.Client(base_url=scraped.shop.url, timeout=REQUEST_TIMEOUT) as client:
        register(client, "scraped@example.com", "a long enough password")  # POST /users, POST /auth/token
    selector = f'job="{JOB}",service="{SERVICE}"'
    _wait_for(scraped.prometheus, f"up{{{selector}}}", [1.0])
    _wait_for(
        scraped.prometheus,
        f'shop_http_requests_total{{{selector},method="POST",route="/api/v1/users",status="201"}}',
        [1.0],
    )
    _wait_for(
        scraped.prometheus,
        f'shop_http_requests_total{{{selector},method="POST",route="/api/v1/auth/token",status="200"}}',
        [1.0],
    )
    _wait_for(
        scraped.prometheus,
        f'shop_http_request_duration_seconds_count{{{selector},method="POST",route="/api/v1/users"}}',
        [1.0],
    )


def test_prometheus_evaluates_every_alerting_rule_without_an_error(scraped: Scraped) -> None:
    names = {rule["alert"] for rule in alerting_rules()}

    def check() -> None:
        groups = api(scraped.prometheus, "rules")["groups"]
        assert sorted(group["name"] for group in groups) == sorted(rule_groups())
        health = {rule["name"]: (rule["health"], rule.get("lastError")) for g in groups for rule in g["rules"]}
        assert set(health) == names
        assert all(state == ("ok", None) or state == ("ok", "") for state in health.values()), health

    _eventually(check, "every rule evaluated, health ok")
    firing = [alert["labels"]["alertname"] for alert in api(scraped.prometheus, "alerts")["alerts"]]
    assert "ShopTargetDown" not in firing and "ShopNotReady" not in firing, firing


def test_prometheus_evaluates_every_dashboard_expression_without_an_error(scraped: Scraped) -> None:
    """Errors only evaluation finds (many-to-many matching, a vector where a scalar goes) on the
    series a real scrape made; ``query`` fails on any."""
    _wait_for(scraped.prometheus, f'up{{job="{JOB}"}}', [1.0])
    for expr in dashboard_expressions():
        query(scraped.prometheus, expr)
