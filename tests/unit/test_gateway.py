"""``shop gateway nginx``: the configuration generated for a placement.

What nginx does with it is tested in ``tests/e2e/test_gateway.py`` (recording upstreams) and
``tests/e2e/test_topologies.py`` (the shop in three topologies); here, what it says.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Blueprint, Flask

from app.cli import main as shop
from app.config import Settings, read_settings
from app.gateway import UNREAD_PREFIX, PlacementError, Route, Upstream, nginx_config, placement, routes
from app.public_api import API_PREFIX, whole_api
from app.registry import CONTEXTS
from infrastructure.http.request_id import SANE_REQUEST_ID
from infrastructure.http.schemas import ProblemDetails

REST = "user,order,notification,audit,recommendation"
PRODUCT_EXTRACTED = ("product=http://10.0.0.2:8000", f"{REST}=http://10.0.0.3:8000")


def settings(**overrides: Any) -> Settings:
    return read_settings({"trusted_proxy_hops": 1, **overrides})


def config(*upstreams: str, **overrides: Any) -> str:
    return nginx_config(placement(upstreams), settings(**overrides), listen="8080")


def locations(text: str) -> dict[str, str]:
    """``location`` → what it does (the directives between its braces)."""
    return {
        match["where"].strip(): match["body"].strip()
        for match in re.finditer(r"location (?P<where>[^{@]+)\{(?P<body>[^}]*)\}", text)
    }


def directive(text: str, name: str) -> list[str]:
    return [match.group(1) for match in re.finditer(rf"^[ ]*{re.escape(name)} ([^;\n]*);", text, re.MULTILINE)]


def test_the_routes_are_the_path_prefixes_of_each_contexts_endpoints() -> None:
    assert routes() == [
        Route("/api/v1/admin/orders", "order"),
        Route("/api/v1/admin/users", "user"),
        Route("/api/v1/audit-log", "audit"),
        Route("/api/v1/auth", "user"),
        Route("/api/v1/orders", "order"),
        Route("/api/v1/products", "product"),
        Route("/api/v1/users", "user"),
        Route("/api/v1/users/me/recommendations", "recommendation"),
    ]


def test_every_endpoint_of_the_whole_api_reaches_its_context_by_longest_prefix() -> None:
    found = routes()
    for rule in whole_api().url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX):
            continue
        path = re.sub(r"<[^>]*>", "x", rule.rule)
        matching = [route for route in found if path == route.prefix or path.startswith(f"{route.prefix}/")]
        assert max(matching, key=lambda route: len(route.prefix)).context == rule.endpoint.split(".", 1)[0], rule.rule


def _app(*rules: tuple[str, str]) -> Flask:
    """An app whose blueprints, named after contexts, hold ``(context, rule)``."""
    app = Flask(__name__, static_folder=None)
    blueprints: dict[str, Blueprint] = {}
    for index, (context, rule) in enumerate(rules):
        blueprint = blueprints.setdefault(context, Blueprint(context, __name__))
        blueprint.add_url_rule(rule, f"view{index}", lambda **_: "")
    for blueprint in blueprints.values():
        app.register_blueprint(blueprint, url_prefix=API_PREFIX)
    return app


def test_a_new_endpoint_is_routed_from_its_blueprint_alone() -> None:
    """No list to keep: an endpoint a context's blueprint gains is routed to that context."""
    app = _app(
        ("product", "/products/<product_id>"),
        ("product", "/wishlists/<wishlist_id>"),
        ("order", "/orders"),
        ("order", "/orders/mine/summary"),
        ("audit", "/orders/mine/audit"),
    )

    assert routes(app) == [
        Route("/api/v1/orders", "order"),
        Route("/api/v1/orders/mine/audit", "audit"),
        Route("/api/v1/products", "product"),
        Route("/api/v1/wishlists", "product"),
    ]


def test_endpoints_no_prefix_can_tell_apart_are_refused() -> None:
    """``/wishlists/<id>`` and ``/wishlists/<id>/orders`` in two contexts: a prefix cannot part them."""
    app = _app(("product", "/wishlists/<wishlist_id>"), ("order", "/wishlists/<wishlist_id>/orders"))
    with pytest.raises(PlacementError, match="/api/v1/wishlists belongs to order, product"):
        routes(app)


def test_the_placement_is_read_as_served_contexts_is() -> None:
    assert placement(PRODUCT_EXTRACTED) == [
        Upstream(("product",), ("10.0.0.2:8000",)),
        Upstream(("user", "order", "notification", "audit", "recommendation"), ("10.0.0.3:8000",)),
    ]
    assert placement(["http://shop:8000"]) == [Upstream(CONTEXTS, ("shop:8000",))], "a URL alone: every context"
    assert placement([" order , product =http://a:1", "user,audit,recommendation=http://b:2"])[0].contexts == (
        "product",
        "order",
    ), "spaces and order as SERVED_CONTEXTS allows"
    assert placement(["http://product_service:8000"]) == [Upstream(CONTEXTS, ("product_service:8000",))], (
        "container names hold underscores"
    )
    twice = placement(["http://a:8000", "http://b:8000"])
    assert twice == [Upstream(CONTEXTS, ("a:8000", "b:8000"))], "the same contexts again: another server"


@pytest.mark.parametrize(
    ("upstreams", "message"),
    [
        (["catalog=http://a:1", "http://b:2"], "unknown context catalog"),
        (["product=http://a:1", "product,user=http://b:2"], "product is served by two upstreams"),
        (["product=http://a:1"], "no upstream serves user, order, audit, recommendation"),
        (["https://a:443"], "must be http://HOST:PORT: the scheme is 'https', not http"),
        (["http://a"], "must be http://HOST:PORT: the port is missing"),
        (["http://a:1/shop"], "must be http://HOST:PORT: no path, query or fragment"),
        (["http://u:p@a:1"], "must be http://HOST:PORT: no credentials"),
        (["http://a:99999"], "must be http://HOST:PORT: the port is missing or not a number from 1 to 65535"),
        (["http://a;b:1"], "must be http://HOST:PORT: the host 'a;b' is not a name"),
        (["http://a:1?x=1"], "must be http://HOST:PORT: no path, query or fragment"),
        (["http://-a:1"], "must be http://HOST:PORT: the host '-a' is not a name"),
    ],
)
def test_a_placement_the_gateway_cannot_route_is_refused_saying_why(upstreams: list[str], message: str) -> None:
    with pytest.raises(PlacementError, match=message):
        placement(upstreams)


def test_each_route_goes_to_the_upstream_serving_its_context_and_the_rest_to_the_first() -> None:
    found = locations(config(*PRODUCT_EXTRACTED))
    rest = "shop_user_order_notification_audit_recommendation"
    for route in routes():
        upstream = "shop_product" if route.context == "product" else rest
        assert found[f"= {route.prefix}"] == f"proxy_pass http://{upstream};"
        assert found[f"{route.prefix}/"] == f"proxy_pass http://{upstream};"
    assert found["/"] == "proxy_pass http://shop_product;", "documentation, health: the first upstream"
    text = config(*PRODUCT_EXTRACTED)
    assert directive(text, "server") == ["10.0.0.2:8000", "10.0.0.3:8000"]


def test_the_internal_endpoints_are_refused_before_any_route() -> None:
    found = locations(config(*PRODUCT_EXTRACTED))
    # ^~: no other location is even considered for a path under /internal/.
    assert found["^~ /internal/"] == "return 404;"
    assert found["= /internal"] == "return 404;"
    assert not [where for where, body in found.items() if "internal" in where and "proxy_pass" in body]


def test_the_metrics_are_not_served_through_the_gateway() -> None:
    assert locations(config(*PRODUCT_EXTRACTED))["= /metrics"] == "return 404;"


def test_the_forwarded_headers_are_those_trusted_proxy_hops_and_the_request_id_rule_expect() -> None:
    text = config(*PRODUCT_EXTRACTED)
    headers = dict(value.split(" ", 1) for value in directive(text, "proxy_set_header"))
    assert headers == {
        "Connection": '""',
        "Host": "$host",
        "X-Forwarded-For": "$proxy_add_x_forwarded_for",
        "X-Forwarded-Proto": "$scheme",
        "X-Request-ID": "$shop_request_id",
    }
    assert f'"~^{SANE_REQUEST_ID.pattern}$" $http_x_request_id;' in text
    assert "TRUSTED_PROXY_HOPS=1" in text

    behind_another = config(*PRODUCT_EXTRACTED, trusted_proxy_hops=2)
    assert "proxy_set_header X-Forwarded-Proto $shop_forwarded_proto;" in behind_another
    assert "TRUSTED_PROXY_HOPS=2" in behind_another


@pytest.mark.parametrize("listen", ["80; include /etc/passwd", "host", "a:99999", ""])
def test_a_listen_address_is_an_address_and_nothing_more(listen: str) -> None:
    with pytest.raises(PlacementError, match="must be PORT or HOST:PORT"):
        nginx_config(placement(PRODUCT_EXTRACTED), settings(), listen=listen)


def test_listen_addresses_nginx_takes_are_taken() -> None:
    for listen in ("8080", "127.0.0.1:8080", "[::1]:8080", "gateway.internal:80"):
        assert f"    listen {listen};" in nginx_config(placement(PRODUCT_EXTRACTED), settings(), listen=listen)


def test_a_shop_that_ignores_forwarded_headers_gets_no_gateway() -> None:
    with pytest.raises(PlacementError, match="TRUSTED_PROXY_HOPS is 0"):
        nginx_config(placement(PRODUCT_EXTRACTED), read_settings({"trusted_proxy_hops": 0}), listen="80")


def test_timeouts_keepalive_and_body_limit_follow_the_shops_settings() -> None:
    text = config(
        *PRODUCT_EXTRACTED,
        web_timeout_seconds=45,
        web_keepalive_seconds=10,
        web_workers=2,
        web_threads=3,
        remote_connect_timeout_seconds=0.5,
        max_content_length=4096,
    )
    assert directive(text, "proxy_read_timeout") == directive(text, "proxy_send_timeout") == ["45s"]
    assert directive(text, "proxy_connect_timeout") == ["500ms"]
    assert directive(text, "keepalive") == ["6", "6"]
    assert directive(text, "keepalive_timeout") == ["9s", "9s"], "nginx lets go before the shop closes"
    assert directive(text, "client_max_body_size") == ["4096"]
    assert directive(text, "proxy_http_version") == ["1.1"]

    brief = config(*PRODUCT_EXTRACTED, web_keepalive_seconds=1)
    assert directive(brief, "keepalive") == [] and directive(brief, "keepalive_timeout") == []


def test_a_shorter_remote_idle_connection_setting_bounds_the_gateways_idle_connections_too() -> None:
    """REMOTE_IDLE_CONNECTION_SECONDS is set for a load balancer between callers and the shop's
    processes that closes idle connections sooner: nginx, a caller of them too, lets go first."""
    assert directive(config(*PRODUCT_EXTRACTED, web_keepalive_seconds=65), "keepalive_timeout") == ["64s", "64s"]
    behind_a_balancer = config(*PRODUCT_EXTRACTED, web_keepalive_seconds=65, remote_idle_connection_seconds=30)
    assert directive(behind_a_balancer, "keepalive_timeout") == ["30s", "30s"]
    assert "keepalive_timeout 30s;  # REMOTE_IDLE_CONNECTION_SECONDS" in behind_a_balancer
    fraction = config(*PRODUCT_EXTRACTED, remote_idle_connection_seconds=0.5)
    assert directive(fraction, "keepalive_timeout") == ["500ms", "500ms"]

    longer = config(*PRODUCT_EXTRACTED, web_keepalive_seconds=10, remote_idle_connection_seconds=20)
    assert directive(longer, "keepalive_timeout") == ["9s", "9s"], "never past the shop's own keep-alive"
    none_kept = config(*PRODUCT_EXTRACTED, remote_idle_connection_seconds=0)
    assert directive(none_kept, "keepalive") == [] and directive(none_kept, "keepalive_timeout") == []


def test_nginx_own_answers_are_problem_details() -> None:
    text = config(*PRODUCT_EXTRACTED)
    for statuses, location, answered in (
        ("400 494", f"{UNREAD_PREFIX}bad_request", 400),  # requests nginx could not read: a path
        ("404", "@shop_not_found", 404),
        ("413", "@shop_too_large", 413),
        ("414", f"{UNREAD_PREFIX}uri_too_long", 414),
        ("502", "@shop_unavailable", 503),
        ("504", "@shop_timed_out", 504),
    ):
        assert f"error_page {statuses} = {location};" in text
        body = re.search(rf"location (?:= )?{location} {{\n(.*?)\n    }}", text, re.DOTALL)
        assert body is not None, location
        assert "default_type application/problem+json;" in body.group(1)
        assert "add_header X-Request-ID $shop_request_id always;" in body.group(1)
        problem = re.search(r"return (\d+) '(.*)';", body.group(1))
        assert problem is not None
        document = json.loads(problem.group(2).replace("$shop_problem_instance", "/x"))
        assert document["status"] == int(problem.group(1)) == answered
        ProblemDetails.model_validate(document)


def test_the_command_prints_the_configuration_or_says_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "1")
    runner = CliRunner()
    printed = runner.invoke(shop, ["gateway", "nginx", "--listen", "127.0.0.1:8080", *_options(PRODUCT_EXTRACTED)])
    assert printed.exit_code == 0, printed.output
    assert printed.output == config(*PRODUCT_EXTRACTED).replace("listen 8080;", "listen 127.0.0.1:8080;")

    refused = runner.invoke(shop, ["gateway", "nginx", "--upstream", "product=http://a:1"])
    assert refused.exit_code == 2
    assert "no upstream serves user, order, audit, recommendation" in refused.output

    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "0")
    unsafe = runner.invoke(shop, ["gateway", "nginx", *_options(PRODUCT_EXTRACTED)])
    assert unsafe.exit_code == 2 and "TRUSTED_PROXY_HOPS is 0" in unsafe.output


def _options(upstreams: tuple[str, ...]) -> list[str]:
    return [argument for upstream in upstreams for argument in ("--upstream", upstream)]
