"""Products and stock reservations, as plain Python."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from contexts.product import events
from contexts.product.domain import currencies, exceptions
from contexts.product.events import StockLine

CENT = Decimal("0.01")
# The most units of a product the inventory holds (available and reserved together): what the
# API documents for initial_stock, and what no adjustment may go beyond.
MAX_STOCK = 1_000_000_000


class Keep(Enum):
    """Marks a field a revision leaves as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


def money(amount: Decimal, currency: str) -> Decimal:
    """A price as the catalog keeps it: never negative, exact to the currency's minor unit (cents
    for most, whole yen for JPY), and kept as cents."""
    places = currencies.decimal_places(currency)
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal(1).scaleb(-places)):
        unit = "a whole number" if places == 0 else f"a number with at most {places} decimal places"
        raise exceptions.InvalidPrice(f"{amount} is not a price in {currency}: one is a non-negative {unit}")
    return abs(amount).quantize(CENT)  # abs: never a negative zero


@dataclass
class Product:
    id: uuid.UUID
    sku: str
    name: str
    description: str | None
    price: Decimal
    currency: str
    created_at: datetime
    events: list[Any] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def create(
        cls, *, sku: str, name: str, description: str | None, price: Decimal, currency: str, now: datetime
    ) -> Product:
        if not currencies.is_currency(currency):
            raise exceptions.UnknownCurrency(currency)
        product = cls(
            id=uuid.uuid4(),
            sku=sku,
            name=name,
            description=description,
            price=money(price, currency),
            currency=currency,
            created_at=now,
        )
        product.events.append(
            events.ProductCreated(product_id=product.id, sku=sku, name=name, price=product.price, currency=currency)
        )
        return product

    def revise(
        self,
        *,
        name: str | Keep = KEEP,
        description: str | Keep | None = KEEP,
        price: Decimal | Keep = KEEP,
    ) -> None:
        """Change what is given; a description may be set to None, so absence is ``KEEP``."""
        if not isinstance(price, Keep):
            self.price = money(price, self.currency)
        if not isinstance(name, Keep):
            self.name = name
        if not isinstance(description, Keep):
            self.description = description


class ReservationStatus(str, Enum):
    RESERVED = "reserved"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    # Released by the sweep because no placed order confirmed it in time.
    EXPIRED = "expired"


def merge_lines(lines: Iterable[StockLine]) -> tuple[StockLine, ...]:
    """One line per product, in product-id order (the order rows are locked in, so no deadlock)."""
    totals: Counter[uuid.UUID] = Counter()
    for line in lines:
        if line.quantity <= 0:
            raise ValueError(f"quantity of product {line.product_id} must be positive")
        totals[line.product_id] += line.quantity
    if not totals:
        raise ValueError("a reservation holds at least one line")
    return tuple(StockLine(product_id, totals[product_id]) for product_id in sorted(totals))


@dataclass
class Reservation:
    id: uuid.UUID
    lines: tuple[StockLine, ...]
    status: ReservationStatus
    created_at: datetime
    events: list[Any] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def place(cls, reservation_id: uuid.UUID, lines: tuple[StockLine, ...], now: datetime) -> Reservation:
        reservation = cls(id=reservation_id, lines=lines, status=ReservationStatus.RESERVED, created_at=now)
        reservation.events.append(events.StockReserved(reservation_id=reservation_id, lines=lines))
        return reservation

    @property
    def holds_stock(self) -> bool:
        return self.status in (ReservationStatus.RESERVED, ReservationStatus.CONFIRMED)

    def confirm(self) -> None:
        """The order was placed. A reservation that expired first holds nothing: the caller
        must take its stock again before confirming (see ``ConfirmReservationHandler``), and
        that taking is a fact of its own, as the expiry's release was."""
        if self.status is ReservationStatus.EXPIRED:
            self.events.append(events.StockReserved(reservation_id=self.id, lines=self.lines))
        if self.status in (ReservationStatus.RESERVED, ReservationStatus.EXPIRED):
            self.status = ReservationStatus.CONFIRMED

    def release(self, reason: str) -> bool:
        """Stop holding stock; False if it already did not. An expired reservation gave its
        stock back already, but becomes released too: its order was cancelled, so a confirmation
        arriving later must leave it be rather than take the stock again."""
        if self.status is ReservationStatus.EXPIRED:
            self.status = ReservationStatus.RELEASED
            return False
        if not self.holds_stock:
            return False
        self.status = ReservationStatus.RELEASED
        self.events.append(events.StockReleased(reservation_id=self.id, lines=self.lines, reason=reason))
        return True

    def expire(self) -> bool:
        """Release a hold no order confirmed; False if it was confirmed or released meanwhile."""
        if self.status is not ReservationStatus.RESERVED:
            return False
        self.status = ReservationStatus.EXPIRED
        self.events.append(events.StockReleased(reservation_id=self.id, lines=self.lines, reason="expired"))
        return True
