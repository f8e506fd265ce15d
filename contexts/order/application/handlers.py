"""The order context's use cases, one verb each.

Placing an order is a small saga across two contexts: reserve stock through the product
context's published interface, learning the products' prices in the same call (the order id
is the reservation id, so a retry reserves nothing twice), then save the order. If the order
cannot be made of what was reserved (mixed currencies), saving fails, or the product context
could not say whether it reserved (unreachable, timed out), the reservation is released;
should even that fail, the product context expires the unconfirmed reservation after its
time-to-live. Either way no order exists without its stock, and no stock stays held without
its order beyond that time. One failure is different: a connection lost while the order's
commit ran, which may have committed it. The order is then read back: stored, it is placed
and keeps its stock; not found, its reservation is left to expire rather than released, since
the commit may still land.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import structlog

from contexts.order.api import OrderDTO, OrderLineDTO, OrderNotFound
from contexts.order.application.ports import OrderFilter, OrderKey, UnitOfWorkFactory
from contexts.order.domain import exceptions, model
from contexts.order.events import CANCELLED_BY_ADMIN, CANCELLED_BY_CUSTOMER
from contexts.product.api import (
    CurrenciesDiffer,
    InsufficientStock,
    ProductApi,
    ProductDTO,
    ProductNotFound,
    ReservationConflict,
    ReservationLine,
)
from infrastructure.errors import OutcomeUnknown

logger = structlog.get_logger(__name__)

# The product context answered: nothing was reserved.
REFUSALS = (CurrenciesDiffer, InsufficientStock, ProductNotFound, ReservationConflict)

IDEMPOTENCY_LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Viewer:
    user_id: uuid.UUID
    is_admin: bool


@dataclass(frozen=True)
class PlaceOrder:
    user_id: uuid.UUID
    items: tuple[model.Item, ...]
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """Identifies the request body, for telling a replay from a reuse of the key."""
        items = [[str(item.product_id), item.quantity] for item in self.items]
        return hashlib.sha256(json.dumps(items).encode()).hexdigest()


@dataclass(frozen=True)
class GetOrder:
    """The order, if ``viewer`` may see it. None is a trusted caller (another context, through
    the published API), named so at each call: no default, so that no customer's read skips
    the check by leaving it out."""

    order_id: uuid.UUID
    viewer: Viewer | None


@dataclass(frozen=True)
class CancelOrder:
    order_id: uuid.UUID
    viewer: Viewer


@dataclass(frozen=True)
class ListOrders:
    user_id: uuid.UUID
    limit: int
    before: OrderKey | None = None


@dataclass(frozen=True)
class ListAllOrders:
    """An administrator's view: every customer's orders matching ``where``."""

    where: OrderFilter
    limit: int
    before: OrderKey | None = None


@dataclass(frozen=True)
class OrderPage:
    items: list[OrderDTO]
    last: OrderKey | None
    has_more: bool


def to_dto(order: model.Order) -> OrderDTO:
    return OrderDTO(
        id=order.id,
        user_id=order.user_id,
        status=order.status.value,
        items=tuple(
            OrderLineDTO(
                product_id=line.product_id,
                sku=line.sku,
                name=line.name,
                unit_price=line.unit_price,
                quantity=line.quantity,
                line_total=line.line_total,
            )
            for line in order.lines
        ),
        total=order.total,
        currency=order.currency,
        created_at=order.created_at,
    )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _order(
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    items: Sequence[model.Item],
    products: Mapping[uuid.UUID, ProductDTO],
) -> model.Order:
    """The order of ``items``, each line a snapshot of its product as reserved."""
    lines = [
        model.OrderLine(
            product_id=item.product_id,
            sku=products[item.product_id].sku,
            name=products[item.product_id].name,
            unit_price=products[item.product_id].price,
            currency=products[item.product_id].currency,
            quantity=item.quantity,
        )
        for item in items
    ]
    return model.Order.place(order_id=order_id, user_id=user_id, lines=lines, now=_now())


class PlaceOrderHandler:
    def __init__(self, *, uow: UnitOfWorkFactory, products: ProductApi) -> None:
        self._uow = uow
        self._products = products

    def __call__(self, command: PlaceOrder) -> OrderDTO:
        key = command.idempotency_key
        if key is None:
            return to_dto(self._place(command))
        with self._uow() as uow:
            claim = uow.idempotency.claim(
                user_id=command.user_id, key=key, fingerprint=command.fingerprint(), now=_now()
            )
            uow.commit()
        if claim.replay is not None:
            return to_dto(claim.replay)
        try:
            return to_dto(self._place(command))
        except Exception:
            self._forget(command.user_id, key)
            raise

    def _place(self, command: PlaceOrder) -> model.Order:
        """Reserve and learn the prices in one call (one round trip when the product context is
        served elsewhere), then build and save the order. The product context refuses products
        priced in several currencies before it looks at the stock, so such an order is a 400
        that held nothing and published nothing, as when the prices were looked up first; an
        order that fails after the reservation gives its stock back."""
        items = model.merge_items(command.items)
        order_id = uuid.uuid4()
        try:
            products = self._products.reserve_priced(
                order_id, [ReservationLine(item.product_id, item.quantity) for item in items]
            )
        except ProductNotFound as error:
            raise exceptions.UnknownProducts(error.product_ids) from None
        except CurrenciesDiffer as error:
            raise exceptions.MixedCurrencies(error.currencies) from None
        except REFUSALS:
            raise
        except Exception:
            self._release_quietly(order_id, reason="order_not_placed")
            raise
        try:
            order = _order(order_id, command.user_id, items, products)
        except Exception:
            self._release_quietly(order_id, reason="order_not_placed")
            raise
        try:
            with self._uow() as uow:
                if command.idempotency_key is None:
                    uow.add_and_commit(order)
                else:
                    uow.orders.add(order)
                    uow.idempotency.complete(user_id=command.user_id, key=command.idempotency_key, order=order)
                    uow.commit()
        except OutcomeUnknown:
            # The connection was lost while the commit ran: the server may have committed the
            # order. Stored, it is placed (its OrderPlaced confirms the reservation). Not found,
            # it may still be committing, and a release is final: its confirmation would then
            # find nothing held, an oversell. So the reservation is left to expire after its
            # time-to-live, which a late confirmation undoes by taking the stock again, or
            # fails visibly (ReservationLapsed).
            if not self._found(order.id):
                logger.warning("order.outcome_unknown_reservation_left_to_expire", order_id=str(order.id))
                raise
            logger.warning("order.stored_though_its_commit_answer_was_lost", order_id=str(order.id))
        except Exception:
            self._release_quietly(order.id, reason="order_not_saved")
            raise
        return order

    def _found(self, order_id: uuid.UUID) -> bool:
        """Whether the order is stored; False when even the read fails."""
        try:
            with self._uow(write=False) as uow:
                return uow.orders.get(order_id) is not None
        except Exception:
            logger.warning("order.read_back_failed", order_id=str(order_id), exc_info=True)
            return False

    def _release_quietly(self, reservation_id: uuid.UUID, reason: str) -> None:
        """Undo a reservation the order will not have; the caller's error is the one to report,
        and a release that fails too is left to the product context's expiry of unconfirmed
        reservations."""
        try:
            self._products.release(reservation_id, reason=reason)
        except Exception:
            logger.warning("order.reservation_not_released", reservation_id=str(reservation_id), exc_info=True)

    def _forget(self, user_id: uuid.UUID, key: str) -> None:
        """Free the key after a failure; if even that fails, its lease runs out instead."""
        try:
            with self._uow() as uow:
                uow.idempotency.forget(user_id=user_id, key=key)
                uow.commit()
        except Exception:
            logger.exception("order.idempotency_key_not_freed", lease_seconds=IDEMPOTENCY_LEASE.seconds)


class GetOrderHandler:
    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, query: GetOrder) -> OrderDTO:
        """The order, if the query's viewer may see it; others get not-found."""
        with self._uow(write=False) as uow:
            order = uow.orders.get(query.order_id)
        viewer = query.viewer
        if order is None or (viewer and not order.is_visible_to(viewer.user_id, is_admin=viewer.is_admin)):
            raise OrderNotFound(query.order_id)
        return to_dto(order)


class ListOrdersHandler:
    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, query: ListOrders) -> OrderPage:
        with self._uow(write=False) as uow:
            orders = uow.orders.list_for_user(query.user_id, limit=query.limit + 1, before=query.before)
        return _page(orders, query.limit)


class ListAllOrdersHandler:
    """Orders of every customer, for administrators (the HTTP layer checks who asks)."""

    def __init__(self, *, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, query: ListAllOrders) -> OrderPage:
        with self._uow(write=False) as uow:
            orders = uow.orders.list_matching(query.where, limit=query.limit + 1, before=query.before)
        return _page(orders, query.limit)


def _page(orders: list[model.Order], limit: int) -> OrderPage:
    """``orders`` were read one beyond ``limit``: whether that one exists says if more follow."""
    page = orders[:limit]
    last = OrderKey(page[-1].created_at, page[-1].id) if page else None
    return OrderPage(items=[to_dto(order) for order in page], last=last, has_more=len(orders) > limit)


class CancelOrderHandler:
    def __init__(self, *, uow: UnitOfWorkFactory, products: ProductApi) -> None:
        self._uow = uow
        self._products = products

    def __call__(self, command: CancelOrder) -> OrderDTO:
        viewer = command.viewer
        with self._uow() as uow:
            order = uow.orders.get(command.order_id, for_update=True)
            if order is None or not order.is_visible_to(viewer.user_id, is_admin=viewer.is_admin):
                raise OrderNotFound(command.order_id)
            reason = CANCELLED_BY_CUSTOMER if order.user_id == viewer.user_id else CANCELLED_BY_ADMIN
            if order.cancel(reason):
                uow.orders.save(order)
                uow.commit()
        # Every cancel (a repeated one too) gives the stock back at once when the product context
        # answers; when it does not, its subscriber to OrderCancelled releases it durably.
        try:
            self._products.release(order.id, reason="order_cancelled")
        except Exception:
            logger.warning("order.release_deferred_to_event", order_id=str(order.id), exc_info=True)
        return to_dto(order)
