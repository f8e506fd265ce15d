"""HTTP endpoints of the product context: JSON in, use case, JSON out.

``bp`` is the public API; ``internal_bp`` serves the published ProductApi to the shop's other
services (see ``contexts/product/client.py``).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from flask import Blueprint, Response, request, url_for
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from contexts.product import client
from contexts.product.api import (
    CurrenciesDiffer,
    InsufficientStock,
    ProductDTO,
    ProductNotFound,
    ReservationConflict,
    ReservationLine,
)
from contexts.product.application import handlers
from contexts.product.application.facade import ProductFacade
from contexts.product.domain import currencies, exceptions, model
from infrastructure.auth.service import internal_blueprint
from infrastructure.http.openapi import Access, Header, Link, endpoint
from infrastructure.http.pagination import CursorKey, decode_cursor, encode_cursor
from infrastructure.http.problems import Problem, map_errors
from infrastructure.http.schemas import Money, ResponseModel
from infrastructure.http.validation import (
    MULTI_LINE,
    NOT_ONLY_INVISIBLE,
    SINGLE_LINE,
    STRIPPED,
    PatternMeaning,
    id_from_path,
    parse_body,
    parse_query,
)

bp = Blueprint("product", __name__)
map_errors(
    bp,
    {
        ProductNotFound: 404,
        exceptions.SkuAlreadyExists: 409,
        exceptions.StockWouldGoNegative: 409,
        exceptions.StockWouldExceedMaximum: 409,
        exceptions.UnknownCurrency: 400,
        exceptions.InvalidInitialStock: 400,
    },
)


@bp.errorhandler(exceptions.InvalidPrice)
def _invalid_price(error: exceptions.InvalidPrice) -> Response:
    """Refused by the catalog's rules (a yen has no cents): named like a field the schema refused."""
    message = str(error)
    return Problem(400, message, title="Invalid input", errors=[{"field": "price", "message": message}]).to_response()


Sku = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"),
    PatternMeaning("must be 1 to 64 letters, digits, dots, underscores or hyphens, the first a letter or digit"),
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), SINGLE_LINE, NOT_ONLY_INVISIBLE, STRIPPED]
Description = Annotated[str, StringConstraints(max_length=5000), MULTI_LINE]
Price = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{1,10}(\.[0-9]{1,2})?$"),
    PatternMeaning('must be an amount such as "12.50" (text): up to 10 digits, then up to 2 after a point'),
    Field(
        description='a decimal string with up to two places, e.g. "12.50"; '
        "a whole number in currencies without a minor unit (JPY, KRW, ...)"
    ),
]


def _iso_4217(code: str) -> str:
    if not currencies.is_currency(code):
        raise ValueError("must be an ISO 4217 currency code such as USD or EUR")
    return code


Currency = Annotated[
    str,
    AfterValidator(_iso_4217),
    Field(description="an ISO 4217 currency code", json_schema_extra={"enum": sorted(currencies.CURRENCIES)}),
]


class NewProductBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    sku: Sku
    name: Name
    description: Description | None = None
    price: Price
    currency: Currency = "USD"
    initial_stock: Annotated[int, Field(ge=0, le=model.MAX_STOCK)] = 0


def _no_default(schema: dict[str, Any]) -> None:
    """An omitted field means "unchanged", and null is refused: there is no default to show."""
    schema.pop("default", None)


class ProductChangesBody(BaseModel):
    """Fields left out stay as they are; name and price cannot be null."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: Name = Field(None, json_schema_extra=_no_default)  # type: ignore[assignment]  # omitted ≠ null
    description: Description | None = None
    price: Price = Field(None, json_schema_extra=_no_default)  # type: ignore[assignment]


def _not_zero(delta: int) -> int:
    if delta == 0:
        raise ValueError("must not be zero")
    return delta


class StockAdjustmentBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    delta: Annotated[
        int,
        Field(ge=-model.MAX_STOCK, le=model.MAX_STOCK, json_schema_extra={"not": {"const": 0}}),
        AfterValidator(_not_zero),
    ]
    reason: Annotated[str, StringConstraints(max_length=200), SINGLE_LINE] | None = None


class ProductListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str, StringConstraints(min_length=1)] | None = None
    q: Annotated[str, StringConstraints(max_length=100), SINGLE_LINE, STRIPPED] | None = None


class ProductCursor(CursorKey):
    """Products are listed by sku; a page ends at the last sku shown. Any sku the catalog can
    hold (not only those the API accepts today), so that every page can be followed."""

    sku: Annotated[str, StringConstraints(min_length=1, max_length=64)]


def product_id_from_path(raw: str) -> uuid.UUID:
    return id_from_path(raw, lambda malformed: Problem(404, f"no product with id {malformed}"))


class ProductOut(ResponseModel):
    id: uuid.UUID
    sku: str
    name: str
    description: str | None
    price: Money
    currency: str
    stock: int = Field(description="units available to order now")


class ProductPageOut(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null on the last page")


def _product(product: ProductDTO) -> dict[str, Any]:
    return ProductOut.model_validate(product).model_dump(mode="json")


TAG = "products"
LOCATION = Header("Location", "the new product's URL")
THIS_PRODUCT = {"product_id": "$response.body#/id"}
NEXT_CALLS = {
    "GetProduct": Link("product_get_product", THIS_PRODUCT, description="read the product"),
    "ReviseProduct": Link("product_revise_product", THIS_PRODUCT, description="change the product"),
    "AdjustStock": Link("product_adjust_stock", THIS_PRODUCT, description="adjust its stock"),
    "OrderProduct": Link(
        "order_place_order",
        request_body={"items": [{"product_id": "$response.body#/id", "quantity": 1}]},
        description="order one unit of the product",
    ),
}


@bp.post("/products")
@endpoint(
    summary="Create a product",
    tag=TAG,
    access=Access.ADMIN,
    body=NewProductBody,
    responses={201: ProductOut},
    errors=[409],
    response_headers={201: [LOCATION]},
    links={201: NEXT_CALLS},
    description="A duplicate sku is a 409.",
    example={"sku": "MUG-001", "name": "Enamel mug", "price": "12.50", "currency": "USD", "initial_stock": 40},
)
@inject
def create_product(
    body: NewProductBody,
    create: handlers.CreateProductHandler = Provide["product.create_product"],
) -> tuple[dict[str, Any], int, dict[str, str]]:
    product = create(
        handlers.CreateProduct(
            sku=body.sku,
            name=body.name,
            description=body.description,
            price=Decimal(body.price),
            currency=body.currency,
            initial_stock=body.initial_stock,
        )
    )
    location = url_for("product.get_product", product_id=product.id)
    return _product(product), 201, {"Location": location}


@bp.get("/products")
@endpoint(
    summary="List products",
    tag=TAG,
    query=ProductListQuery,
    responses={200: ProductPageOut},
    description="Ordered by sku. Follow next_cursor for the next page.",
)
@inject
def list_products(
    query: ProductListQuery,
    list_page: handlers.ListProductsHandler = Provide["product.list_products"],
) -> dict[str, Any]:
    after_sku = decode_cursor(query.cursor, ProductCursor).sku if query.cursor else None
    page = list_page(handlers.ListProducts(limit=query.limit, after_sku=after_sku, query=query.q or None))
    next_cursor = encode_cursor(ProductCursor(sku=page.last_sku)) if page.has_more and page.last_sku else None
    return {"items": [_product(item) for item in page.items], "next_cursor": next_cursor}


@bp.get("/products/<product_id>")
@endpoint(summary="Read a product", tag=TAG, responses={200: ProductOut}, errors=[404])
@inject
def get_product(product_id: str, get: handlers.GetProductHandler = Provide["product.get_product"]) -> dict[str, Any]:
    return _product(get(handlers.GetProduct(product_id_from_path(product_id))))


@bp.patch("/products/<product_id>")
@endpoint(
    summary="Change a product's name, description or price",
    tag=TAG,
    access=Access.ADMIN,
    body=ProductChangesBody,
    responses={200: ProductOut},
    errors=[404],
    description="Only the fields sent change; description may be set to null.",
    example={"price": "11.00"},
)
@inject
def revise_product(
    product_id: str,
    body: ProductChangesBody,
    revise: handlers.ReviseProductHandler = Provide["product.revise_product"],
) -> dict[str, Any]:
    changes: dict[str, Any] = {field: getattr(body, field) for field in body.model_fields_set}
    if "price" in changes:
        changes["price"] = Decimal(changes["price"])
    return _product(revise(handlers.ReviseProduct(product_id=product_id_from_path(product_id), **changes)))


@bp.post("/products/<product_id>/stock-adjustments")
@endpoint(
    summary="Adjust a product's stock",
    tag=TAG,
    access=Access.ADMIN,
    body=StockAdjustmentBody,
    responses={200: ProductOut},
    errors=[404, 409],
    description="Stock never goes below zero: such an adjustment is a 409 and changes nothing.",
    example={"delta": 10, "reason": "delivery"},
)
@inject
def adjust_stock(
    product_id: str,
    body: StockAdjustmentBody,
    adjust: handlers.AdjustStockHandler = Provide["product.adjust_stock"],
) -> dict[str, Any]:
    target = product_id_from_path(product_id)
    return _product(adjust(handlers.AdjustStock(product_id=target, delta=body.delta, reason=body.reason)))


# --- Internal endpoints ---------------------------------------------------------------------
# The product service's side of contexts/product/client.py: the published ProductApi over HTTP,
# for the shop's other services only (service token; registered only when SERVICE_TOKEN is set).
# Not declared with @endpoint, so they stay out of the public OpenAPI document.

internal_bp = internal_blueprint("product_internal", __name__, client.INTERNAL_PREFIX)


class ProductIdsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=client.MAX_IDS_PER_CALL)]


class ReservationLineBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    product_id: uuid.UUID
    quantity: Annotated[int, Field(ge=1, le=model.MAX_STOCK)]


class ReservationBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    lines: Annotated[list[ReservationLineBody], Field(min_length=1, max_length=client.MAX_RESERVATION_LINES)]


class ReleaseBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    reason: Annotated[str, StringConstraints(min_length=1, max_length=200), SINGLE_LINE]


def _refusal(status: int, error: Exception, code: str, **fields: Any) -> Response:
    """A refusal the client turns back into the published error: ``code`` names it, the other
    members carry its arguments."""
    return Problem(status, str(error), extensions={"code": code, **fields}).to_response()


@internal_bp.errorhandler(ProductNotFound)
def _product_not_found(error: ProductNotFound) -> Response:
    product_ids = [str(product_id) for product_id in error.product_ids]
    return _refusal(404, error, client.PRODUCT_NOT_FOUND, product_ids=product_ids)


@internal_bp.errorhandler(InsufficientStock)
def _insufficient_stock(error: InsufficientStock) -> Response:
    return _refusal(
        409,
        error,
        client.INSUFFICIENT_STOCK,
        product_id=str(error.product_id),
        sku=error.sku,
        requested=error.requested,
    )


@internal_bp.errorhandler(CurrenciesDiffer)
def _currencies_differ(error: CurrenciesDiffer) -> Response:
    return _refusal(422, error, client.CURRENCIES_DIFFER, currencies=list(error.currencies))


@internal_bp.errorhandler(ReservationConflict)
def _reservation_conflict(error: ReservationConflict) -> Response:
    return _refusal(409, error, client.RESERVATION_CONFLICT)


def _wire_product(product: ProductDTO) -> dict[str, Any]:
    """The DTO as it is: the price as the exact decimal string, not rounded for display."""
    return {
        "id": str(product.id),
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        "price": str(product.price),
        "currency": product.currency,
        "stock": product.stock,
    }


def reservation_id_from_path(raw: str) -> uuid.UUID:
    return id_from_path(raw, lambda malformed: Problem(404, f"no reservation with id {malformed}"))


@internal_bp.get("/products")
@inject
def internal_get_products(api: ProductFacade = Provide["product.api"]) -> dict[str, Any]:
    """``?ids=<uuid>&ids=<uuid>...``: the products among them; unknown ids are simply absent."""
    query = parse_query(ProductIdsQuery, {name: request.args.getlist(name) for name in request.args})
    return {"items": [_wire_product(product) for product in api.get_products(query.ids).values()]}


@internal_bp.put("/reservations/<reservation_id>")
@inject
def internal_reserve(reservation_id: str, api: ProductFacade = Provide["product.api"]) -> tuple[str, int]:
    """Idempotent by the reservation id: PUT again with the same lines and nothing changes."""
    target = reservation_id_from_path(reservation_id)
    body = parse_body(ReservationBody)
    api.reserve(target, [ReservationLine(line.product_id, line.quantity) for line in body.lines])
    return "", 204


@internal_bp.put("/priced-reservations/<reservation_id>")
@inject
def internal_reserve_priced(reservation_id: str, api: ProductFacade = Provide["product.api"]) -> dict[str, Any]:
    """The reservation ``PUT /reservations/<id>`` makes (and as idempotent), answered with the
    reserved products as ``GET /products`` answers them: placing an order in one round trip."""
    target = reservation_id_from_path(reservation_id)
    body = parse_body(ReservationBody)
    priced = api.reserve_priced(target, [ReservationLine(line.product_id, line.quantity) for line in body.lines])
    return {"items": [_wire_product(product) for product in priced.values()]}


@internal_bp.post("/reservations/<reservation_id>/release")
@inject
def internal_release(reservation_id: str, api: ProductFacade = Provide["product.api"]) -> tuple[str, int]:
    """Idempotent: releasing again, or an unknown reservation, changes nothing."""
    target = reservation_id_from_path(reservation_id)
    body = parse_body(ReleaseBody)
    api.release(target, body.reason)
    return "", 204
