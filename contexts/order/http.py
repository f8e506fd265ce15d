"""HTTP endpoints of the order context: JSON in, use case, JSON out."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from dependency_injector.wiring import Provide, inject
from flask import Blueprint, Response, request, url_for
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from contexts.order.api import OrderDTO, OrderNotFound
from contexts.order.application import handlers
from contexts.order.application.ports import OrderFilter, OrderKey
from contexts.order.domain import exceptions, model
from contexts.product.api import InsufficientStock
from infrastructure.auth.bearer import current_principal
from infrastructure.http.openapi import Access, Header, Link, endpoint
from infrastructure.http.pagination import CursorKey, decode_cursor, encode_cursor
from infrastructure.http.problems import Problem, map_errors
from infrastructure.http.schemas import Money, ResponseModel
from infrastructure.http.validation import id_from_path

bp = Blueprint("order", __name__)
map_errors(
    bp,
    {
        OrderNotFound: 404,
        InsufficientStock: 409,
        exceptions.InvalidOrder: 400,
        exceptions.IdempotencyKeyInFlight: 409,
        exceptions.IdempotencyKeyReused: 422,
    },
)

IDEMPOTENCY_HEADER = "Idempotency-Key"


class ItemBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    product_id: uuid.UUID
    quantity: Annotated[int, Field(ge=1, le=model.MAX_QUANTITY)]


class NewOrderBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    items: Annotated[list[ItemBody], Field(min_length=1, max_length=model.MAX_LINES)]


class OrderListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str, StringConstraints(min_length=1)] | None = None


IDEMPOTENCY_KEY = Header(
    IDEMPOTENCY_HEADER,
    "1-255 printable ASCII characters; the same key with the same body replays the first response",
    schema={"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
)


def _idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable() or not key.isascii():
        raise Problem(
            400,
            f"{IDEMPOTENCY_HEADER} must be 1 to 255 printable ASCII characters",
            title="Invalid input",
            errors=[{"field": IDEMPOTENCY_HEADER, "message": "1 to 255 printable ASCII characters"}],
        )
    return key


def _order_id(raw: str) -> uuid.UUID:
    return id_from_path(raw, OrderNotFound)


def _viewer() -> handlers.Viewer:
    principal = current_principal()
    return handlers.Viewer(user_id=principal.user_id, is_admin=principal.is_admin)


class OrderLineOut(ResponseModel):
    product_id: uuid.UUID
    sku: str
    name: str
    unit_price: Money = Field(description="the product's price when the order was placed")
    quantity: int
    line_total: Money


class OrderOut(ResponseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    status: Literal["placed", "cancelled"]
    items: list[OrderLineOut]
    total: Money
    currency: str
    created_at: datetime


class OrderPageOut(BaseModel):
    items: list[OrderOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last page")


def _order(order: OrderDTO) -> dict[str, Any]:
    return OrderOut.model_validate(order).model_dump(mode="json")


def _in_utc(moment: datetime) -> datetime:
    """Times are compared in UTC; one that has no UTC equivalent (year 1 east of Greenwich) is
    not a time an order was placed."""
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError as error:
        raise ValueError("out of range") from error


class OrderCursor(CursorKey):
    """Orders are listed newest first; a page ends at the last order shown."""

    created_at: Annotated[AwareDatetime, AfterValidator(_in_utc)]
    id: uuid.UUID


_RFC3339_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]")


def _time_text(value: object) -> object:
    """Only RFC 3339 text is a time here: pydantic would read ``0.5`` as a Unix timestamp."""
    if not isinstance(value, str) or not _RFC3339_START.match(value):
        raise ValueError("must be an RFC 3339 time with an offset, like 2026-03-01T09:30:00Z")
    return value


PlacedAt = Annotated[AwareDatetime, BeforeValidator(_time_text), AfterValidator(_in_utc)]


class AdminOrderListQuery(OrderListQuery):
    status: Literal["placed", "cancelled"] | None = Field(None, description="only orders in this status")
    customer: uuid.UUID | None = Field(None, description="only the orders of this user (their id)")
    placed_from: PlacedAt | None = Field(
        None, alias="from", description="only orders placed at or after this time (RFC 3339, with an offset)"
    )
    placed_to: PlacedAt | None = Field(
        None, alias="to", description="only orders placed before this time (RFC 3339, with an offset)"
    )

    @field_validator("placed_to")
    @classmethod
    def _not_before_from(cls, placed_to: datetime | None, info: ValidationInfo) -> datetime | None:
        placed_from = info.data.get("placed_from")
        if placed_to is not None and placed_from is not None and placed_from > placed_to:
            raise ValueError("must not be before from")
        return placed_to


def _order_page(page: handlers.OrderPage) -> dict[str, Any]:
    """A page of orders and the cursor of the next one: one shape for customers and administrators."""
    next_cursor = (
        encode_cursor(OrderCursor(created_at=page.last.created_at, id=page.last.order_id))
        if page.has_more and page.last
        else None
    )
    return {"items": [_order(item) for item in page.items], "next_cursor": next_cursor}


def _before(cursor: str | None) -> OrderKey | None:
    key = decode_cursor(cursor, OrderCursor) if cursor else None
    return OrderKey(created_at=key.created_at, order_id=key.id) if key else None


@bp.errorhandler(exceptions.UnknownProducts)
def _unknown_products(error: exceptions.UnknownProducts) -> Response:
    body = NewOrderBody.model_validate_json(request.get_data(cache=True))
    errors = [
        {"field": f"items[{index}].product_id", "message": "no such product"}
        for index, item in enumerate(body.items)
        if item.product_id in error.product_ids
    ]
    return Problem(400, str(error), title="Invalid input", errors=errors).to_response()


TAG = "orders"
THIS_ORDER = {"order_id": "$response.body#/id"}
GET_ORDER = Link("order_get_order", THIS_ORDER, description="read the order")
CANCEL_ORDER = Link("order_cancel_order", THIS_ORDER, description="cancel the order")


@bp.post("/orders")
@endpoint(
    summary="Place an order",
    tag=TAG,
    access=Access.CUSTOMER,
    body=NewOrderBody,
    responses={201: OrderOut},
    errors=[409, 422],
    request_headers=[IDEMPOTENCY_KEY],
    response_headers={201: [Header("Location", "the new order's URL")]},
    links={201: {"GetOrder": GET_ORDER, "CancelOrder": CANCEL_ORDER}},
    description=(
        "All lines are reserved or none: not enough stock for any line is a 409 naming the product. "
        "Unknown products and lines of different currencies are a 400, and so are lines for one product "
        f"whose quantities add up to more than {model.MAX_QUANTITY} (such lines are merged). With an Idempotency-Key, "
        "a repeat with the same body replays the first response; a different body is a 422; "
        "a repeat while the first is still being processed is a 409."
    ),
    example={"items": [{"product_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "quantity": 2}]},
)
@inject
def place_order(
    body: NewOrderBody,
    place: handlers.PlaceOrderHandler = Provide["order.place_order"],
) -> tuple[dict[str, Any], int, dict[str, str]]:
    order = place(
        handlers.PlaceOrder(
            user_id=current_principal().user_id,
            items=tuple(model.Item(item.product_id, item.quantity) for item in body.items),
            idempotency_key=_idempotency_key(),
        )
    )
    return _order(order), 201, {"Location": url_for("order.get_order", order_id=order.id)}


@bp.get("/orders/<order_id>")
@endpoint(
    summary="Read an order",
    tag=TAG,
    access=Access.CUSTOMER,
    responses={200: OrderOut},
    errors=[404],
    links={200: {"CancelOrder": CANCEL_ORDER}},
    description="Only its owner and administrators see an order; anyone else gets a 404.",
)
@inject
def get_order(order_id: str, get: handlers.GetOrderHandler = Provide["order.get_order"]) -> dict[str, Any]:
    return _order(get(handlers.GetOrder(_order_id(order_id), _viewer())))


@bp.get("/orders")
@endpoint(
    summary="List the caller's orders, newest first",
    tag=TAG,
    access=Access.CUSTOMER,
    query=OrderListQuery,
    responses={200: OrderPageOut},
)
@inject
def list_orders(
    query: OrderListQuery,
    list_page: handlers.ListOrdersHandler = Provide["order.list_orders"],
) -> dict[str, Any]:
    page = list_page(
        handlers.ListOrders(user_id=current_principal().user_id, limit=query.limit, before=_before(query.cursor))
    )
    return _order_page(page)


@bp.get("/admin/orders")
@endpoint(
    summary="List every customer's orders, newest first",
    tag=TAG,
    access=Access.ADMIN,
    query=AdminOrderListQuery,
    responses={200: OrderPageOut},
    description=(
        "For administrators. Filters combine: a status, a customer (user id), and a time range "
        "[from, to) of when the order was placed; from after to is a 400. Orders placed at the same "
        "time are ordered by id, so pages neither repeat nor skip one."
    ),
)
@inject
def list_all_orders(
    query: AdminOrderListQuery,
    list_page: handlers.ListAllOrdersHandler = Provide["order.list_all_orders"],
) -> dict[str, Any]:
    where = OrderFilter(
        status=model.OrderStatus(query.status) if query.status else None,
        user_id=query.customer,
        placed_from=query.placed_from,
        placed_to=query.placed_to,
    )
    return _order_page(list_page(handlers.ListAllOrders(where=where, limit=query.limit, before=_before(query.cursor))))


@bp.post("/orders/<order_id>/cancel")
@endpoint(
    summary="Cancel an order",
    tag=TAG,
    access=Access.CUSTOMER,
    responses={200: OrderOut},
    errors=[404],
    links={200: {"GetOrder": GET_ORDER}},
    description=(
        "For its owner or an administrator. Its stock is available again at once; cancelling twice changes nothing."
    ),
)
@inject
def cancel_order(order_id: str, cancel: handlers.CancelOrderHandler = Provide["order.cancel_order"]) -> dict[str, Any]:
    return _order(cancel(handlers.CancelOrder(order_id=_order_id(order_id), viewer=_viewer())))
