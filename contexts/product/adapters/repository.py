"""Catalog, stock and reservations stored with SQLAlchemy.

Stock moves are conditional ``UPDATE`` statements: the database checks and changes the
level in one step, so no interleaving of concurrent requests can take more than is there.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert
from sqlalchemy.sql.elements import BindParameter

from contexts.product import events
from contexts.product.adapters import search
from contexts.product.adapters.orm import (
    ProductRow,
    ReservationLineRow,
    ReservationRow,
    StockAdjustmentRow,
    StockRow,
)
from contexts.product.application.ports import ReservationExists
from contexts.product.domain import exceptions, model
from infrastructure.db.failures import unique_violation_on


class SqlAlchemyProductRepository:
    def __init__(self, session: Session, seen: list[Any]) -> None:
        self._session = session
        self._seen = seen

    def add(self, product: model.Product) -> None:
        self._session.add(
            ProductRow(
                id=product.id,
                sku=product.sku,
                name=product.name,
                name_folded=product.name.casefold(),
                description=product.description,
                price=product.price,
                currency=product.currency,
                created_at=product.created_at,
            )
        )
        try:
            self._session.flush()
        except IntegrityError as error:
            raise exceptions.SkuAlreadyExists(product.sku) from error
        self._seen.append(product)

    def save(self, product: model.Product) -> None:
        row = self._session.get_one(ProductRow, product.id)
        row.name = product.name
        row.name_folded = product.name.casefold()
        row.description = product.description
        row.price = product.price
        self._seen.append(product)

    def get(self, product_id: uuid.UUID) -> model.Product | None:
        row = self._session.get(ProductRow, product_id)
        return _product(row) if row else None

    def get_many(self, product_ids: Collection[uuid.UUID]) -> list[model.Product]:
        if not product_ids:
            return []
        rows = self._session.scalars(select(ProductRow).where(ProductRow.id.in_(list(product_ids))))
        return [_product(row) for row in rows]

    def list(self, *, limit: int, after_sku: str | None, query: str | None) -> list[model.Product]:
        """Products by sku after ``after_sku``; with ``query``, those whose name or sku contains
        it, case-insensitively, found through the search index (see :mod:`.search`)."""
        statement = select(ProductRow).order_by(ProductRow.sku).limit(limit)
        if after_sku is not None:
            statement = statement.where(ProductRow.sku > after_sku)
        if query:
            statement = search.matching(self._session, statement, query.casefold(), limit=limit)
        return [_product(row) for row in self._session.scalars(statement)]


_STOCK = cast(Table, StockRow.__table__)
_STOCK_OF = _STOCK.c.product_id == bindparam("stock_of")
_UNITS: BindParameter[int] = bindparam("units")
# Every move of stock is one conditional statement, built once: the database checks and changes
# the level in one step (see the module docstring), and each call only binds its numbers.
_TAKE = (
    update(_STOCK)
    .where(_STOCK_OF, _STOCK.c.available >= _UNITS)
    .values(available=_STOCK.c.available - _UNITS, reserved=_STOCK.c.reserved + _UNITS)
)
_GIVE_BACK = (
    update(_STOCK).where(_STOCK_OF).values(available=_STOCK.c.available + _UNITS, reserved=_STOCK.c.reserved - _UNITS)
)
# The maximum bounds additions only: a level over it (possible before it existed) can still be
# brought down, a step at a time.
_ADJUST = (
    update(_STOCK)
    .where(
        _STOCK_OF,
        _STOCK.c.available + _UNITS >= 0,
        or_(_UNITS <= 0, _STOCK.c.available + _STOCK.c.reserved + _UNITS <= model.MAX_STOCK),
    )
    .values(available=_STOCK.c.available + _UNITS)
)


class SqlAlchemyStockRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def create(self, product_id: uuid.UUID, quantity: int) -> None:
        self._session.add(StockRow(product_id=product_id, available=quantity, reserved=0))

    def available(self, product_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, int]:
        if not product_ids:
            return {}
        rows = self._session.execute(
            select(StockRow.product_id, StockRow.available).where(StockRow.product_id.in_(list(product_ids)))
        )
        return {product_id: available for product_id, available in rows}

    def take(self, product_id: uuid.UUID, quantity: int) -> bool:
        return self._move(_TAKE, product_id, quantity)

    def give_back(self, product_id: uuid.UUID, quantity: int) -> None:
        self._move(_GIVE_BACK, product_id, quantity)

    def adjust(self, product_id: uuid.UUID, delta: int, reason: str | None) -> bool:
        changed = self._move(_ADJUST, product_id, delta)
        if changed:
            self._session.add(
                StockAdjustmentRow(
                    product_id=product_id, delta=delta, reason=reason, created_at=datetime.now(timezone.utc)
                )
            )
        return changed

    def _move(self, statement: Any, product_id: uuid.UUID, quantity: int) -> bool:
        result = self._session.connection().execute(statement, {"stock_of": product_id, "units": quantity})
        return bool(result.rowcount == 1)


_RESERVATIONS = cast(Table, ReservationRow.__table__)
_RESERVATION_LINES = cast(Table, ReservationLineRow.__table__)
RESERVATIONS_TABLE, RESERVATION_LINES_TABLE = _RESERVATIONS.name, _RESERVATION_LINES.name
# Built once, so that SQLAlchemy compiles each once: every order's confirmation runs them.
_RESERVATION = select(_RESERVATIONS.c.status, _RESERVATIONS.c.created_at).where(
    _RESERVATIONS.c.id == bindparam("reservation_id")
)
_RESERVATION_FOR_UPDATE = _RESERVATION.with_for_update()
_RESERVED_LINES = (
    select(_RESERVATION_LINES.c.product_id, _RESERVATION_LINES.c.quantity)
    .where(_RESERVATION_LINES.c.reservation_id == bindparam("reservation_id"))
    .order_by(_RESERVATION_LINES.c.product_id)
)
_SAVE_RESERVATION = (
    update(_RESERVATIONS)
    .where(_RESERVATIONS.c.id == bindparam("reservation_id"))
    .values(status=bindparam("new_status", type_=_RESERVATIONS.c.status.type))
)
_CONFIRM_IF_RESERVED = (
    update(_RESERVATIONS)
    .where(
        _RESERVATIONS.c.id == bindparam("reservation_id"),
        _RESERVATIONS.c.status == model.ReservationStatus.RESERVED.value,
    )
    .values(status=model.ReservationStatus.CONFIRMED.value)
)
CONFIRM_IF_RESERVED_RETURNING = _CONFIRM_IF_RESERVED.returning(_RESERVATIONS.c.id)


def _reserve_one_line() -> ReturningInsert[Any]:
    """A one-line reservation as one statement (PostgreSQL): the line's stock taken by the
    conditional UPDATE of :data:`_TAKE`, first, then, from its RETURNING, so only if it took the
    stock, the reservation and its line inserted. It returns the reservation's id, or no row
    when the stock was not there (nothing written then). Stock row first, reservation key
    second: the order in which the steps of ``ReserveStockHandler`` lock them too, so the
    two ways never deadlock. A twin (the reservation's key already there) fails it whole on
    that key, the stock given back with it. Parameters: ``stock_of``, ``units``,
    ``reservation_id``, ``status``, ``created_at``."""
    taken = _TAKE.returning(_STOCK.c.product_id).cte("taken")
    reservation_id = bindparam("reservation_id", type_=_RESERVATIONS.c.id.type)
    line = insert(_RESERVATION_LINES).from_select(
        ["reservation_id", "product_id", "quantity"],
        select(
            reservation_id, taken.c.product_id, bindparam("units", type_=_RESERVATION_LINES.c.quantity.type)
        ).select_from(taken),
    )
    return (
        insert(_RESERVATIONS)
        .from_select(
            ["id", "status", "created_at"],
            select(
                reservation_id,
                bindparam("status", type_=_RESERVATIONS.c.status.type),
                bindparam("created_at", type_=_RESERVATIONS.c.created_at.type),
            ).select_from(taken),
        )
        .add_cte(line.cte("reserved_line"))
        .returning(_RESERVATIONS.c.id)
    )


# Built once, so that SQLAlchemy compiles it once (and the outbox its WITHs once).
RESERVE_ONE_LINE = _reserve_one_line()


def reserve_one_line_parameters(reservation: model.Reservation) -> dict[str, Any] | None:
    """The parameters of :data:`RESERVE_ONE_LINE` for ``reservation``; None when it has more
    than one line (their stock is taken by the steps, one conditional UPDATE each)."""
    if len(reservation.lines) != 1:
        return None
    (line,) = reservation.lines
    return {
        "stock_of": line.product_id,
        "units": line.quantity,
        "reservation_id": reservation.id,
        "status": reservation.status.value,
        "created_at": reservation.created_at,
    }


class SqlAlchemyReservationRepository:
    """Reservations through SQLAlchemy Core: a reservation is two small tables written and read
    whole on every order, where the ORM's unit of work and identity map only add work."""

    def __init__(self, session: Session, seen: list[Any]) -> None:
        self._session = session
        self._seen = seen

    def add(self, reservation: model.Reservation) -> None:
        try:
            self._session.connection().execute(
                insert(_RESERVATIONS),
                {"id": reservation.id, "status": reservation.status.value, "created_at": reservation.created_at},
            )
        except IntegrityError as error:
            # The same test of a twin as the one-statement reservation's (unit_of_work).
            if unique_violation_on(error, (RESERVATIONS_TABLE,)):
                raise ReservationExists(str(reservation.id)) from error
            raise
        self._session.connection().execute(
            insert(_RESERVATION_LINES),
            [
                {"reservation_id": reservation.id, "product_id": line.product_id, "quantity": line.quantity}
                for line in reservation.lines
            ],
        )
        self._seen.append(reservation)

    def get(self, reservation_id: uuid.UUID, *, for_update: bool = False) -> model.Reservation | None:
        key = {"reservation_id": reservation_id}
        header = self._session.execute(_RESERVATION_FOR_UPDATE if for_update else _RESERVATION, key).one_or_none()
        if header is None:
            return None
        lines = self._session.execute(_RESERVED_LINES, key)
        return model.Reservation(
            id=reservation_id,
            lines=tuple(events.StockLine(product_id, quantity) for product_id, quantity in lines),
            status=model.ReservationStatus(header.status),
            created_at=header.created_at,
        )

    def confirm_if_reserved(self, reservation_id: uuid.UUID) -> bool:
        """One conditional UPDATE, where reading the reservation and its lines then writing it
        took three statements: it locks the row as ``get(for_update=True)`` does, and the
        database checks the status under that lock (PostgreSQL re-reads a row another
        transaction changed meanwhile)."""
        result = self._session.connection().execute(_CONFIRM_IF_RESERVED, {"reservation_id": reservation_id})
        return bool(result.rowcount)

    def unconfirmed_before(self, moment: datetime, limit: int) -> list[uuid.UUID]:
        statement = (
            select(ReservationRow.id)
            .where(
                ReservationRow.status == model.ReservationStatus.RESERVED.value,
                ReservationRow.created_at < moment,
            )
            .order_by(ReservationRow.created_at)
            .limit(limit)
        )
        return list(self._session.scalars(statement))

    def save(self, reservation: model.Reservation) -> None:
        self._session.execute(
            _SAVE_RESERVATION, {"reservation_id": reservation.id, "new_status": reservation.status.value}
        )
        self._seen.append(reservation)


def _product(row: ProductRow) -> model.Product:
    return model.Product(
        id=row.id,
        sku=row.sku,
        name=row.name,
        description=row.description,
        price=row.price,
        currency=row.currency,
        created_at=row.created_at,
    )
