"""``shop seed-demo`` seeds what the process serves: products where product is served, the demo
customer where user is served, both in the monolith. Before, it refused to run anywhere but in
a process serving both, so a shop with product and user served apart could not be seeded."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import text

from app.cli import DEMO_EMAIL, DEMO_PRODUCTS, main
from app.factory import container_of
from tests.conftest import MakeApp

APART = {
    "events_broker_url": "amqp://guest:guest@127.0.0.1:5672//",  # never connected to here
    "service_token": "seed-demo-test-service-token-0123456789",
    "token_secret": "seed-demo-test-signing-secret-0123456789",
}
SKUS = sorted(sku for sku, *_ in DEMO_PRODUCTS)


def seed_demo(app: Flask) -> Result:
    return app.test_cli_runner().invoke(main, ["seed-demo"])


def rows(app: Flask, context: str, query: str) -> list[Any]:
    with getattr(container_of(app), f"{context}_database")().begin() as connection:
        return list(connection.scalars(text(query)))


def seeded_skus(app: Flask) -> list[str]:
    return sorted(rows(app, "product", "SELECT sku FROM product_products"))


def seeded_emails(app: Flask) -> list[str]:
    return rows(app, "user", "SELECT email FROM user_users")


def test_the_monolith_seeds_products_and_the_demo_customer_once(make_app: MakeApp) -> None:
    app = make_app()

    first, second = seed_demo(app), seed_demo(app)

    assert first.exit_code == second.exit_code == 0, first.output
    assert seeded_skus(app) == SKUS
    assert seeded_emails(app) == [DEMO_EMAIL]
    assert "demo customer created" in first.output and "not here" not in first.output
    assert "created" not in second.output


def test_the_product_service_seeds_the_products_and_says_where_the_customer_is_seeded(make_app: MakeApp) -> None:
    app = make_app(served_contexts="product", user_service_url="http://127.0.0.1:9", **APART)

    result = seed_demo(app)

    assert result.exit_code == 0, result.output
    assert seeded_skus(app) == SKUS
    assert "demo customer: not here; run seed-demo with the settings of the process serving user" in result.output
    assert "log in" not in result.output


def test_the_user_service_seeds_the_customer_and_says_where_the_products_are_seeded(make_app: MakeApp) -> None:
    app = make_app(served_contexts="user,notification,audit", **APART)

    result = seed_demo(app)

    assert result.exit_code == 0, result.output
    assert seeded_emails(app) == [DEMO_EMAIL]
    assert "demo products: not here; run seed-demo with the settings of the process serving product" in result.output
    assert f"email {DEMO_EMAIL}" in result.output


@pytest.mark.parametrize("served", ["notification", "order,recommendation"])
def test_a_process_serving_neither_refuses_naming_where_to_run_it(make_app: MakeApp, served: str) -> None:
    app = make_app(
        served_contexts=served, user_service_url="http://127.0.0.1:9", product_service_url="http://127.0.0.1:9", **APART
    )

    result = seed_demo(app)

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: this process serves {served.replace(',', ', ')} (SERVED_CONTEXTS): run `shop seed-demo` with the"
        " settings of the process serving product (demo products) and of the one serving user (demo customer)"
    ]
