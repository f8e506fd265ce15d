"""Harnesses for the contract tests: every published Protocol, run against every implementation.

A contract test sees a *harness*: ``api``, the implementation of the context's published
Protocol under test, plus the few set-up steps the Protocol itself does not offer (putting
products, users or orders in place). Tests call only the Protocol's methods and catch only
the published DTOs and errors, so they hold for any implementation.

Each harness fixture is parametrized over its context's implementations, on each database
backend (the ``backend`` fixture, asked for by name so the app is built on it). ``"in-process"``
is the context's facade from the application container. ``"http"`` is the context's published
remote client (``contexts/<name>/client.py``) talking over loopback to a live app serving the
context's internal endpoints, seeded through that app's container: so far the product and user
contexts have one (``REMOTE_IMPLEMENTATIONS``). When another context gets a client, give its
fixture the same branch; every contract test then runs against both, unchanged.

``"fake"`` is the in-memory stand-in that other contexts' unit tests use in place of the real
one (``tests/fakes/``): held to the same contract, so that a context tested alone against
it sees what the real one would do. A fake has no database, so it runs once, not per backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypeVar

import pytest

from app.containers import ApplicationContainer
from app.factory import container_of
from contexts.order.api import OrderApi
from contexts.order.application.handlers import PlaceOrder
from contexts.order.domain.model import Item
from contexts.product.api import ProductApi
from contexts.product.application.handlers import CreateProduct
from contexts.product.client import RemoteProductApi
from contexts.user.api import UserApi
from contexts.user.application.handlers import RegisterUser
from contexts.user.client import RemoteUserApi
from contexts.user.domain.model import Role
from infrastructure.remote.breakers import BreakerRegistry
from infrastructure.remote.options import RemoteOptions
from infrastructure.remote.service import RemoteService
from tests.conftest import Backend, MakeApp
from tests.fakes.product import FakeProductApi
from tests.http_servers import serve_app
from tests.isolation import FAKE, keep_only, runs_a_fake

IN_PROCESS = "in-process"
HTTP = "http"
IMPLEMENTATIONS = [IN_PROCESS]
REMOTE_IMPLEMENTATIONS = [IN_PROCESS, HTTP]
FAKED_IMPLEMENTATIONS = [*REMOTE_IMPLEMENTATIONS, FAKE]
SERVICE_TOKEN = "contract-tests-service-token-0123456789"
# Patient enough for a loaded CI machine; no retries, so a contract test sees each call once.
REMOTE_OPTIONS = RemoteOptions(connect_timeout_seconds=5, read_timeout_seconds=30, attempts=1)


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


class _Closeable(Protocol):
    def close(self) -> None: ...


Client = TypeVar("Client", bound=_Closeable)


@contextmanager
def _served_remotely(
    request: pytest.FixtureRequest, context: str, client: Callable[[RemoteService], Client]
) -> Iterator[tuple[Client, ApplicationContainer]]:
    """A client of ``context`` talking over real HTTP to an app serving it (with the service
    token), and that app's container, where the tests put their data."""
    make_app: MakeApp = request.getfixturevalue("make_app")
    service = make_app(service_token=SERVICE_TOKEN)
    with serve_app(service) as url:
        remote = RemoteService(context, url, SERVICE_TOKEN, REMOTE_OPTIONS, breakers=BreakerRegistry())
        with closing(client(remote)) as api:
            yield api, container_of(service)


def _unknown(implementation: str) -> ValueError:
    return ValueError(f"no harness for implementation {implementation!r}")


def _in_process_products(container: ApplicationContainer) -> Callable[..., uuid.UUID]:
    def add_product(
        *, sku: str | None = None, name: str = "Thing", price: str = "10.00", currency: str = "USD", stock: int = 10
    ) -> uuid.UUID:
        created = container.product.create_product()(
            CreateProduct(
                sku=sku or f"SKU-{uuid.uuid4().hex[:10]}",
                name=name,
                description=None,
                price=Decimal(price),
                currency=currency,
                initial_stock=stock,
            )
        )
        product_id: uuid.UUID = created.id
        return product_id

    return add_product


def _in_process_users(container: ApplicationContainer) -> Callable[..., uuid.UUID]:
    def add_user(*, email: str | None = None, name: str = "Cus Tomer", admin: bool = False) -> uuid.UUID:
        registered = container.user.register_user()(
            RegisterUser(
                email=email or f"{uuid.uuid4().hex[:12]}@example.com",
                password="correct horse",
                name=name,
                role=Role.ADMIN if admin else Role.CUSTOMER,
            )
        )
        user_id: uuid.UUID = registered.id
        return user_id

    return add_user


@pytest.fixture(params=FAKED_IMPLEMENTATIONS)
def product_harness(request: pytest.FixtureRequest, backend: Backend) -> Iterator[ProductHarness]:
    if request.param == FAKE:
        fake = FakeProductApi()
        yield ProductHarness(api=fake, add_product=lambda **fields: fake.add(**fields).id)
    elif request.param == IN_PROCESS:
        container: ApplicationContainer = request.getfixturevalue("container")
        yield ProductHarness(api=container.product.api(), add_product=_in_process_products(container))
    elif request.param == HTTP:
        with _served_remotely(request, "product", RemoteProductApi) as (api, service):
            yield ProductHarness(api=api, add_product=_in_process_products(service))
    else:
        raise _unknown(request.param)


@pytest.fixture(params=REMOTE_IMPLEMENTATIONS)
def user_harness(request: pytest.FixtureRequest, backend: Backend) -> Iterator[UserHarness]:
    if request.param == IN_PROCESS:
        container: ApplicationContainer = request.getfixturevalue("container")
        yield UserHarness(api=container.user.api(), add_user=_in_process_users(container))
    elif request.param == HTTP:
        with _served_remotely(request, "user", RemoteUserApi) as (api, service):
            yield UserHarness(api=api, add_user=_in_process_users(service))
    else:
        raise _unknown(request.param)


@pytest.fixture(params=IMPLEMENTATIONS)
def order_harness(request: pytest.FixtureRequest, backend: Backend) -> OrderHarness:
    if request.param == IN_PROCESS:
        container: ApplicationContainer = request.getfixturevalue("container")
        add_product, add_user = _in_process_products(container), _in_process_users(container)

        def place_order(*, price: str = "10.00", quantity: int = 1) -> PlacedOrder:
            product_id, user_id = add_product(price=price, stock=quantity), add_user()
            placed = container.order.place_order()(PlaceOrder(user_id=user_id, items=(Item(product_id, quantity),)))
            return PlacedOrder(order_id=placed.id, user_id=user_id, product_id=product_id)

        return OrderHarness(api=container.order.api(), place_order=place_order)
    raise _unknown(request.param)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A fake on PostgreSQL would be its SQLite run again: it is left out (deselected)."""
    keep_only(config, items, lambda item: not runs_a_fake(item) or item.callspec.params.get("backend") == "sqlite")
