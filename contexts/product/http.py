"""HTTP endpoints of the product context: JSON in, use case, JSON out."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from dependency_injector.wiring import Provide, inject
from flask import Blueprint, url_for
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from contexts.product.api import ProductDTO, ProductNotFound
from contexts.product.application import handlers
from contexts.product.domain import currencies, exceptions
from infrastructure.http.auth import admin_required
from infrastructure.http.pagination import decode_cursor, encode_cursor
from infrastructure.http.problems import Problem, map_errors
from infrastructure.http.validation import MULTI_LINE, SINGLE_LINE, parse_body, parse_query
from infrastructure.serialization import to_data

bp = Blueprint("product", __name__)
map_errors(
    bp,
    {
        ProductNotFound: 404,
        exceptions.SkuAlreadyExists: 409,
        exceptions.StockWouldGoNegative: 409,
        exceptions.InvalidPrice: 400,
        exceptions.UnknownCurrency: 400,
    },
)

MAX_STOCK = 1_000_000_000

Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SINGLE_LINE]
Description = Annotated[str, StringConstraints(max_length=5000), MULTI_LINE]
Price = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{1,10}(\.[0-9]{1,2})?$"),
    Field(description='a decimal string with up to two places, e.g. "12.50"'),
]


def _iso_4217(code: str) -> str:
    if not currencies.is_currency(code):
        raise ValueError("must be an ISO 4217 currency code such as USD or EUR")
    return code


Currency = Annotated[str, AfterValidator(_iso_4217)]


class NewProductBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    sku: Sku
    name: Name
    description: Description | None = None
    price: Price
    currency: Currency = "USD"
    initial_stock: Annotated[int, Field(ge=0, le=MAX_STOCK)] = 0


class ProductChangesBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: Name | None = None
    description: Description | None = None
    price: Price | None = None


def _not_zero(delta: int) -> int:
    if delta == 0:
        raise ValueError("delta must not be zero")
    return delta


class StockAdjustmentBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    delta: Annotated[int, Field(ge=-MAX_STOCK, le=MAX_STOCK), AfterValidator(_not_zero)]
    reason: Annotated[str, StringConstraints(max_length=200), SINGLE_LINE] | None = None


class ProductListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: Annotated[int, Field(ge=1, le=100)] = 20
    cursor: Annotated[str, StringConstraints(min_length=1)] | None = None
    q: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100), SINGLE_LINE] | None = None


def product_id_from_path(raw: str) -> uuid.UUID:
    """A malformed id names no product: 404, like an unknown one."""
    try:
        return uuid.UUID(raw)
    except ValueError as error:
        raise Problem(404, f"no product with id {raw}") from error


def _product(product: ProductDTO) -> dict[str, Any]:
    body: dict[str, Any] = to_data(product)
    return body


@bp.post("/products")
@admin_required
@inject
def create_product(
    create: handlers.CreateProductHandler = Provide["product.create_product"],
) -> tuple[dict[str, Any], int, dict[str, str]]:
    body = parse_body(NewProductBody)
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
@inject
def list_products(
    list_page: handlers.ListProductsHandler = Provide["product.list_products"],
) -> dict[str, Any]:
    query = parse_query(ProductListQuery)
    after_sku = decode_cursor(query.cursor, lambda key: str(key["sku"])) if query.cursor else None
    page = list_page(handlers.ListProducts(limit=query.limit, after_sku=after_sku, query=query.q or None))
    next_cursor = encode_cursor({"sku": page.last_sku}) if page.has_more else None
    return {"items": [_product(item) for item in page.items], "next_cursor": next_cursor}


@bp.get("/products/<product_id>")
@inject
def get_product(
    product_id: str, get: handlers.GetProductHandler = Provide["product.get_product"]
) -> dict[str, Any]:
    return _product(get(product_id_from_path(product_id)))


@bp.patch("/products/<product_id>")
@admin_required
@inject
def revise_product(
    product_id: str, revise: handlers.ReviseProductHandler = Provide["product.revise_product"]
) -> dict[str, Any]:
    target = product_id_from_path(product_id)
    body = parse_body(ProductChangesBody)
    changes: dict[str, Any] = {}
    for field in sorted(body.model_fields_set):
        value = getattr(body, field)
        if value is None and field != "description":
            raise Problem(
                400,
                f"{field} cannot be null",
                title="Invalid input",
                errors=[{"field": field, "message": "may not be null"}],
            )
        changes[field] = Decimal(value) if field == "price" else value
    return _product(revise(handlers.ReviseProduct(product_id=target, **changes)))


@bp.post("/products/<product_id>/stock-adjustments")
@admin_required
@inject
def adjust_stock(
    product_id: str, adjust: handlers.AdjustStockHandler = Provide["product.adjust_stock"]
) -> dict[str, Any]:
    target = product_id_from_path(product_id)
    body = parse_body(StockAdjustmentBody)
    return _product(adjust(handlers.AdjustStock(product_id=target, delta=body.delta, reason=body.reason)))
