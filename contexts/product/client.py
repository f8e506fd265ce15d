"""The remote implementation of the published :class:`~contexts.product.api.ProductApi`.

Published beside ``api.py`` and ``events.py`` (ARCHITECTURE rule 1): a context that calls the
product context gets this client instead of the in-process facade when the product context
runs as a service of its own, and its code does not change. It speaks to the internal
endpoints the product service serves (``contexts/product/http.py``) and re-raises their
refusals as the typed errors of ``api.py``, so callers cannot tell the two implementations
apart, except that this one may also raise
:class:`~infrastructure.errors.DependencyUnavailable` when the service does not answer.

This module also defines the wire format both sides share: paths, limits and problem codes.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

from contexts.product.api import (
    CurrenciesDiffer,
    InsufficientStock,
    ProductDTO,
    ProductNotFound,
    ReservationConflict,
    ReservationLine,
)
from infrastructure.auth.tokens import TokenKeys
from infrastructure.errors import DependencyMisconfigured, UnexpectedAnswer

if TYPE_CHECKING:
    # The HTTP client (httpx, tenacity, pybreaker) is the caller's: a service serving this
    # context's internal endpoints shares this module's wire format without it.
    import httpx

    from infrastructure.remote.service import RemoteService

INTERNAL_PREFIX = "/internal/v1/product"
MAX_IDS_PER_CALL = 100
MAX_RESERVATION_LINES = 1000

# The ``code`` member of the problem details the internal endpoints answer refusals with.
PRODUCT_NOT_FOUND = "product_not_found"
INSUFFICIENT_STOCK = "insufficient_stock"
RESERVATION_CONFLICT = "reservation_conflict"
CURRENCIES_DIFFER = "currencies_differ"

NO_INTERNAL_ENDPOINTS = (
    "PRODUCT_SERVICE_URL does not lead to a product service serving internal endpoints"
    " (SERVED_CONTEXTS including product, and SERVICE_TOKEN, set there)"
)


class RemoteProductApi:
    """Every call is idempotent by the contract of ProductApi, so every call may be retried."""

    def __init__(self, service: RemoteService) -> None:
        self._service = service

    def get_products(self, product_ids: Collection[uuid.UUID]) -> Mapping[uuid.UUID, ProductDTO]:
        wanted = sorted(set(product_ids))
        found: dict[uuid.UUID, ProductDTO] = {}
        for start in range(0, len(wanted), MAX_IDS_PER_CALL):
            chunk = [str(product_id) for product_id in wanted[start : start + MAX_IDS_PER_CALL]]
            response = self._service.request(
                "GET", f"{INTERNAL_PREFIX}/products", params={"ids": chunk}, idempotent=True
            )
            if response.status_code != 200:
                self._refused(response)
            found.update((product.id, product) for product in self._products(response))
        return found

    def reserve(self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]) -> None:
        response = self._service.request(
            "PUT", f"{INTERNAL_PREFIX}/reservations/{reservation_id}", json=_reservation(lines), idempotent=True
        )
        if response.status_code != 204:
            self._refused(response)

    def reserve_priced(
        self, reservation_id: uuid.UUID, lines: Sequence[ReservationLine]
    ) -> Mapping[uuid.UUID, ProductDTO]:
        response = self._service.request(
            "PUT", f"{INTERNAL_PREFIX}/priced-reservations/{reservation_id}", json=_reservation(lines), idempotent=True
        )
        if response.status_code != 200:
            self._refused(response)
        priced = {product.id: product for product in self._products(response)}
        if not {line.product_id for line in lines} <= priced.keys():
            raise UnexpectedAnswer(self._service.name, response.status_code, "not the reserved products")
        return priced

    def release(self, reservation_id: uuid.UUID, reason: str) -> None:
        response = self._service.request(
            "POST",
            f"{INTERNAL_PREFIX}/reservations/{reservation_id}/release",
            json={"reason": reason},
            idempotent=True,
            own_budget=True,  # it undoes a reservation, often after a failure spent the deadline
        )
        if response.status_code != 204:
            self._refused(response)

    def check_access(self, tokens: TokenKeys) -> None:
        """Return if the product service takes this service's calls and its customers' tokens,
        signed as ``tokens`` says (readiness). Raises :class:`DependencyMisconfigured` when it
        refuses the service token, serves no internal endpoints at PRODUCT_SERVICE_URL, or
        shares no token secret with this service; :class:`DependencyUnavailable` when it does
        not answer within the connect timeout (a probe); :class:`UnexpectedAnswer` when its
        answer makes no sense."""
        from infrastructure.remote.access import check_access

        check_access(self._service, INTERNAL_PREFIX, tokens, no_internal_endpoints=NO_INTERNAL_ENDPOINTS)

    def close(self) -> None:
        self._service.close()

    def _products(self, response: httpx.Response) -> list[ProductDTO]:
        try:
            return [_product(item) for item in response.json()["items"]]
        except (ValueError, KeyError, TypeError, ArithmeticError) as error:
            raise UnexpectedAnswer(self._service.name, response.status_code, "not a list of products") from error

    def _refused(self, response: httpx.Response) -> NoReturn:
        """Raise the published error the problem's ``code`` names; a 400 is the caller's bad
        argument, as the in-process facade's ValueError would be; a 404 without a code means
        no internal endpoints at PRODUCT_SERVICE_URL (the client only calls paths they serve,
        with well-formed ids), a misconfiguration; anything else is unexpected."""
        problem = _problem(response)
        try:
            published = _published_error(problem)
        except (KeyError, TypeError, ValueError) as error:
            raise UnexpectedAnswer(self._service.name, response.status_code, "a malformed refusal") from error
        if published is not None:
            raise published
        detail = str(problem.get("detail", ""))
        if response.status_code == 400:
            raise ValueError(f"the product service refused the arguments: {detail}")
        if response.status_code == 404:
            raise DependencyMisconfigured(self._service.name, NO_INTERNAL_ENDPOINTS)
        raise UnexpectedAnswer(self._service.name, response.status_code, detail)


def _reservation(lines: Sequence[ReservationLine]) -> dict[str, Any]:
    return {"lines": [{"product_id": str(line.product_id), "quantity": line.quantity} for line in lines]}


def _product(item: Mapping[str, Any]) -> ProductDTO:
    description = item["description"]
    return ProductDTO(
        id=uuid.UUID(item["id"]),
        sku=str(item["sku"]),
        name=str(item["name"]),
        description=None if description is None else str(description),
        price=Decimal(item["price"]),
        currency=str(item["currency"]),
        stock=int(item["stock"]),
    )


def _problem(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _published_error(problem: Mapping[str, Any]) -> Exception | None:
    """The error of ``api.py`` that ``problem`` stands for, if it stands for one."""
    code = problem.get("code")
    if code == PRODUCT_NOT_FOUND:
        return ProductNotFound([uuid.UUID(product_id) for product_id in problem["product_ids"]])
    if code == INSUFFICIENT_STOCK:
        return InsufficientStock(uuid.UUID(problem["product_id"]), str(problem["sku"]), int(problem["requested"]))
    if code == RESERVATION_CONFLICT:
        return ReservationConflict(str(problem["detail"]))
    if code == CURRENCIES_DIFFER:
        return CurrenciesDiffer([str(currency) for currency in problem["currencies"]])
    return None
