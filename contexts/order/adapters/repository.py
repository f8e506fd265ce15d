"""Orders and idempotency keys stored with SQLAlchemy."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, delete, insert, select, tuple_, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from contexts.order.adapters.orm import IdempotencyKeyRow, OrderLineRow, OrderRow
from contexts.order.application.handlers import IDEMPOTENCY_LEASE
from contexts.order.application.ports import Claim, OrderFilter, OrderKey
from contexts.order.domain import exceptions, model
from infrastructure.serialization import to_data

_ORDERS = cast(Table, OrderRow.__table__)
_ORDER_LINES = cast(Table, OrderLineRow.__table__)

IN_FLIGHT = "in_flight"
COMPLETED = "completed"


class SqlAlchemyOrderRepository:
    def __init__(self, session: Session, seen: list[Any]) -> None:
        self._session = session
        self._seen = seen

    def add(self, order: model.Order) -> None:
        # Core statements: a new order is written once and whole, so the ORM's unit of work
        # (flush planning, identity map, relationship cascade) would only add work per order.
        connection = self._session.connection()
        connection.execute(insert(_ORDERS), _order_row(order))
        connection.execute(insert(_ORDER_LINES), _line_rows(order))
        self._seen.append(order)

    def save(self, order: model.Order) -> None:
        self._session.get_one(OrderRow, order.id).status = order.status.value
        self._seen.append(order)

    def get(self, order_id: uuid.UUID, *, for_update: bool = False) -> model.Order | None:
        statement = select(OrderRow).where(OrderRow.id == order_id)
        if for_update:
            statement = statement.with_for_update()
        row = self._session.scalar(statement)
        return _order(row) if row else None

    def list_for_user(self, user_id: uuid.UUID, *, limit: int, before: OrderKey | None) -> list[model.Order]:
        """The user's orders newest first, from just after ``before`` (the last one already shown).

        The keyset condition is a row-value comparison, ``(created_at, id) < (:c, :i)``: both
        SQLite and PostgreSQL turn it into a range on ``ix_order_orders_user_newest``
        (``user_id, created_at, id``), so a page deep in the history starts where it is instead
        of walking every newer order. The equivalent ``created_at < :c OR (created_at = :c AND
        id < :i)`` is not used as a range by either, and got slower with every order.
        """
        return self._newest_first(select(OrderRow).where(OrderRow.user_id == user_id), limit, before)

    def list_matching(self, where: OrderFilter, *, limit: int, before: OrderKey | None) -> list[model.Order]:
        """Orders matching ``where``, newest first, in keyset pages like :meth:`list_for_user`.

        Each filter has an index that keeps the page a range read in the listing's order: none or
        a time range, ``ix_order_orders_newest`` (``created_at, id``); a status,
        ``ix_order_orders_status_newest`` (``status, created_at, id``); a customer,
        ``ix_order_orders_user_newest``. Combined filters take one of them and check the rest
        on the rows it yields."""
        statement = select(OrderRow)
        if where.status is not None:
            statement = statement.where(OrderRow.status == where.status.value)
        if where.user_id is not None:
            statement = statement.where(OrderRow.user_id == where.user_id)
        if where.placed_from is not None:
            statement = statement.where(OrderRow.created_at >= where.placed_from)
        if where.placed_to is not None and (before is None or before.created_at >= where.placed_to):
            # Past the first page the cursor is the tighter upper bound, and implies this one:
            # given both, SQLite reads the index from ``to`` down and drops every row above the cursor.
            statement = statement.where(OrderRow.created_at < where.placed_to)
        return self._newest_first(statement, limit, before)

    def _newest_first(self, statement: Select[OrderRow], limit: int, before: OrderKey | None) -> list[model.Order]:
        statement = statement.order_by(OrderRow.created_at.desc(), OrderRow.id.desc()).limit(limit)
        if before is not None:
            # A plain tuple on the right takes the columns' types (UtcDateTime, Uuid) for its values.
            statement = statement.where(tuple_(OrderRow.created_at, OrderRow.id) < (before.created_at, before.order_id))
        return [_order(row) for row in self._session.scalars(statement)]


def _order_row(order: model.Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "user_id": order.user_id,
        "status": order.status.value,
        "currency": order.currency,
        "created_at": order.created_at,
    }


def _line_rows(order: model.Order) -> list[dict[str, Any]]:
    return [
        {
            "order_id": order.id,
            "position": position,
            "product_id": line.product_id,
            "sku": line.sku,
            "name": line.name,
            "unit_price": line.unit_price,
            "currency": line.currency,
            "quantity": line.quantity,
        }
        for position, line in enumerate(order.lines)
    ]


# One statement per number of lines, built on first use so that SQLAlchemy compiles each once.
_ADD_ONE_STATEMENT: dict[int, ReturningInsert[Any]] = {}


def add_in_one_statement(order: model.Order) -> tuple[ReturningInsert[Any], dict[str, Any]]:
    """The order and its lines as ONE INSERT (PostgreSQL: the lines' INSERT a WITH of the
    order's; the lines' foreign key is checked at the statement's end, once both are in),
    returning the order's id, and its parameters: for a commit that is this one statement
    with the order's events (``commit_with_events_if``). The lines are a UNION ALL of one
    SELECT of parameters each: a multi-row VALUES would be compiled anew at every call."""
    row, lines = _order_row(order), _line_rows(order)
    statement = _ADD_ONE_STATEMENT.get(len(lines))
    if statement is None:
        columns = list(lines[0])
        each_line = union_all(
            *(
                select(*(bindparam(f"line{index}_{name}", type_=_ORDER_LINES.c[name].type) for name in columns))
                for index in range(len(lines))
            )
        )
        statement = _ADD_ONE_STATEMENT[len(lines)] = (
            insert(_ORDERS)
            .values({name: bindparam(f"order_{name}", type_=_ORDERS.c[name].type) for name in row})
            .add_cte(insert(_ORDER_LINES).from_select(columns, each_line).cte("order_lines"))
            .returning(_ORDERS.c.id)
        )
    parameters = {f"order_{name}": value for name, value in row.items()}
    for index, line in enumerate(lines):
        parameters.update({f"line{index}_{name}": value for name, value in line.items()})
    return statement, parameters


class SqlAlchemyIdempotencyStore:
    def __init__(self, session: Session) -> None:
        self._session = session

    def claim(self, *, user_id: uuid.UUID, key: str, fingerprint: str, now: datetime) -> Claim:
        row = self._session.scalar(
            select(IdempotencyKeyRow)
            .where(IdempotencyKeyRow.user_id == user_id, IdempotencyKeyRow.key == key)
            .with_for_update()
        )
        if row is None:
            self._session.add(
                IdempotencyKeyRow(
                    user_id=user_id,
                    key=key,
                    fingerprint=fingerprint,
                    state=IN_FLIGHT,
                    locked_until=now + IDEMPOTENCY_LEASE,
                    created_at=now,
                )
            )
            try:
                self._session.flush()
            except IntegrityError as error:
                # A concurrent request inserted the same key first: it is in flight.
                raise exceptions.IdempotencyKeyInFlight() from error
            return Claim()
        if row.fingerprint != fingerprint:
            raise exceptions.IdempotencyKeyReused()
        if row.state == COMPLETED and row.order_snapshot is not None:
            return Claim(replay=_order_from_snapshot(json.loads(row.order_snapshot)))
        if row.locked_until > now:
            raise exceptions.IdempotencyKeyInFlight()
        # The request that held the key died without finishing; this one takes over.
        row.locked_until = now + IDEMPOTENCY_LEASE
        return Claim()

    def complete(self, *, user_id: uuid.UUID, key: str, order: model.Order) -> None:
        row = self._session.get_one(IdempotencyKeyRow, (user_id, key))
        row.state = COMPLETED
        row.order_snapshot = json.dumps(_snapshot(order))

    def forget(self, *, user_id: uuid.UUID, key: str) -> None:
        self._session.execute(
            delete(IdempotencyKeyRow).where(
                IdempotencyKeyRow.user_id == user_id,
                IdempotencyKeyRow.key == key,
                IdempotencyKeyRow.state == IN_FLIGHT,
            )
        )


def _order(row: OrderRow) -> model.Order:
    return model.Order(
        id=row.id,
        user_id=row.user_id,
        status=model.OrderStatus(row.status),
        currency=row.currency,
        created_at=row.created_at,
        lines=tuple(
            model.OrderLine(
                product_id=line.product_id,
                sku=line.sku,
                name=line.name,
                unit_price=line.unit_price,
                currency=line.currency,
                quantity=line.quantity,
            )
            for line in row.lines
        ),
    )


def _snapshot(order: model.Order) -> dict[str, Any]:
    """The order as it was answered, so a replay answers the same even after a cancel."""
    snapshot: dict[str, Any] = to_data(order)
    snapshot.pop("events")
    return snapshot


def _order_from_snapshot(data: dict[str, Any]) -> model.Order:
    return model.Order(
        id=uuid.UUID(data["id"]),
        user_id=uuid.UUID(data["user_id"]),
        status=model.OrderStatus(data["status"]),
        currency=data["currency"],
        created_at=datetime.fromisoformat(data["created_at"]),
        lines=tuple(
            model.OrderLine(
                product_id=uuid.UUID(line["product_id"]),
                sku=line["sku"],
                name=line["name"],
                unit_price=Decimal(line["unit_price"]),
                currency=line["currency"],
                quantity=line["quantity"],
            )
            for line in data["lines"]
        ),
    )
