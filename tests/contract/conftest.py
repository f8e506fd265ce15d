"""Harnesses for the contract tests: every published Protocol, run against every implementation.

A contract test sees a *harness*: ``api``, the implementation of the context's published
Protocol under test, plus the few set-up steps the Protocol itself does not offer (putting
products, users or orders in place). Tests call only the Protocol's methods and catch only
the published DTOs and errors, so they hold for any implementation.

Each harness fixture is parametrized over ``IMPLEMENTATIONS``. Today there is one,
``"in-process"``: the context's facade from the application container, on each database
backend (the ``backend`` fixture, asked for by name so the in-process app is built on it). When a context is
split into its own service, add ``"http"`` to ``IMPLEMENTATIONS`` and a branch to the
fixture that builds the remote client (pointed at a running service, seeded through its
HTTP API or its container); every contract test then runs against both, unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest

from app.containers import ApplicationContainer
from contexts.order.api import OrderApi
from contexts.order.application.handlers import PlaceOrder
from contexts.order.domain.model import Item
from contexts.product.api import ProductApi
from contexts.product.application.handlers import CreateProduct
from contexts.user.api import UserApi
from contexts.user.application.handlers import RegisterUser
from contexts.user.domain.model import Role
from tests.conftest import Backend

IN_PROCESS = "in-process"
IMPLEMENTATIONS = [IN_PROCESS]


@dataclass(frozen=True)
class ProductHarness:
    api: ProductApi
    add_product: Callable[..., uuid.UUID]
    """``add_product(*, sku, name, price, currency, stock) -> product id``; all keywords optional."""


@dataclass(frozen=True)
class UserHarness:
    api: UserApi
    add_user: Callable[..., uuid.UUID]
    """``add_user(*, email, name, admin) -> user id``; all keywords optional."""


@dataclass(frozen=True)
class PlacedOrder:
    order_id: uuid.UUID
    user_id: uuid.UUID
    product_id: uuid.UUID


@dataclass(frozen=True)
class OrderHarness:
    api: OrderApi
    place_order: Callable[..., PlacedOrder]
    """``place_order(*, price, quantity) -> PlacedOrder``: a new customer buys one new product."""


def _unknown(implementation: str) -> ValueError:
    return ValueError(f"no harness for implementation {implementation!r}")


def _in_process_products(container: ApplicationContainer) -> Callable[..., uuid.UUID]:
    def add_product(
        *, sku: str | None = None, name: str = "Thing", price: str = "10.00", currency: str = "USD", stock: int = 10
    ) -> uuid.UUID:
        created = container.product.create_product()(
            CreateProduct(sku=sku or f"SKU-{uuid.uuid4().hex[:10]}", name=name, description=None,
                          price=Decimal(price), currency=currency, initial_stock=stock)
        )
        product_id: uuid.UUID = created.id
        return product_id

    return add_product


def _in_process_users(container: ApplicationContainer) -> Callable[..., uuid.UUID]:
    def add_user(*, email: str | None = None, name: str = "Cus Tomer", admin: bool = False) -> uuid.UUID:
        registered = container.user.register_user()(
            RegisterUser(email=email or f"{uuid.uuid4().hex[:12]}@example.com", password="correct horse", name=name,
                         role=Role.ADMIN if admin else Role.CUSTOMER)
        )
        user_id: uuid.UUID = registered.id
        return user_id

    return add_user


@pytest.fixture(params=IMPLEMENTATIONS)
def product_harness(request: pytest.FixtureRequest, backend: Backend) -> ProductHarness:
    if request.param == IN_PROCESS:
        container: ApplicationContainer = request.getfixturevalue("container")
        return ProductHarness(api=container.product.api(), add_product=_in_process_products(container))
    raise _unknown(request.param)


@pytest.fixture(params=IMPLEMENTATIONS)
def user_harness(request: pytest.FixtureRequest, backend: Backend) -> UserHarness:
    if request.param == IN_PROCESS:
        container: ApplicationContainer = request.getfixturevalue("container")
        return UserHarness(api=container.user.api(), add_user=_in_process_users(container))
    raise _unknown(request.param)


@pytest.fixture(params=IMPLEMENTATIONS)
def order_harness(request: pytest.FixtureRequest, backend: Backend) -> OrderHarness:
    if request.param == IN_PROCESS:
        container: ApplicationContainer = request.getfixturevalue("container")
        add_product, add_user = _in_process_products(container), _in_process_users(container)

        def place_order(*, price: str = "10.00", quantity: int = 1) -> PlacedOrder:
            product_id, user_id = add_product(price=price, stock=quantity), add_user()
            placed = container.order.place_order()(
                PlaceOrder(user_id=user_id, items=(Item(product_id, quantity),))
            )
            return PlacedOrder(order_id=placed.id, user_id=user_id, product_id=product_id)

        return OrderHarness(api=container.order.api(), place_order=place_order)
    raise _unknown(request.param)
