"""The order context's ports in memory."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from contexts.order import events as order_events
from contexts.order.application import ports as order_ports
from contexts.order.application.handlers import IDEMPOTENCY_LEASE
from contexts.order.application.ports import Claim, OrderFilter, OrderKey
from contexts.order.domain import exceptions as order_exceptions
from contexts.order.domain import model as order_model
from tests.fakes.common import (
    CommitFailed,
    FakeUnitOfWork,
    Staged,
    Store,
    Table,
    detached,
)

IN_FLIGHT = "in_flight"
COMPLETED = "completed"


@dataclasses.dataclass(frozen=True)
class KeyRecord:
    fingerprint: str
    state: str
    locked_until: datetime
    answer: order_model.Order | None = None


class FakeOrderRepository:
    def __init__(self, orders: Staged[uuid.UUID, order_model.Order], seen: list[Any]) -> None:
        self._orders = orders
        self._seen = seen

    def add(self, order: order_model.Order) -> None:
        if self._orders.get(order.id) is not None:
            raise KeyError(f"order {order.id} exists")
        self._orders.put(order.id, detached(order))
        self._seen.append(order)

    def save(self, order: order_model.Order) -> None:
        if self._orders.get(order.id) is None:
            raise KeyError(order.id)
        self._orders.put(order.id, detached(order))
        self._seen.append(order)

    def get(self, order_id: uuid.UUID, *, for_update: bool = False) -> order_model.Order | None:
        order = self._orders.get(order_id)
        return detached(order) if order else None

    def list_for_user(self, user_id: uuid.UUID, *, limit: int, before: OrderKey | None) -> list[order_model.Order]:
        def key(order: order_model.Order) -> tuple[datetime, uuid.UUID]:
            return (order.created_at, order.id)

        mine = [order for order in self._orders.values() if order.user_id == user_id]
        if before is not None:
            mine = [order for order in mine if key(order) < (before.created_at, before.order_id)]
        return [detached(order) for order in sorted(mine, key=key, reverse=True)[:limit]]

    def list_matching(self, where: OrderFilter, *, limit: int, before: OrderKey | None) -> list[order_model.Order]:
        def matches(order: order_model.Order) -> bool:
            return (
                (where.status is None or order.status is where.status)
                and (where.user_id is None or order.user_id == where.user_id)
                and (where.placed_from is None or order.created_at >= where.placed_from)
                and (where.placed_to is None or order.created_at < where.placed_to)
                and (before is None or (order.created_at, order.id) < (before.created_at, before.order_id))
            )

        found = sorted(filter(matches, self._orders.values()), key=lambda o: (o.created_at, o.id), reverse=True)
        return [detached(order) for order in found[:limit]]


class FakeIdempotencyStore:
    def __init__(self, keys: Staged[tuple[uuid.UUID, str], KeyRecord]) -> None:
        self._keys = keys

    def claim(self, *, user_id: uuid.UUID, key: str, fingerprint: str, now: datetime) -> Claim:
        record = self._keys.get((user_id, key))
        if record is None:
            self._keys.put((user_id, key), KeyRecord(fingerprint, IN_FLIGHT, now + IDEMPOTENCY_LEASE))
            return Claim()
        if record.fingerprint != fingerprint:
            raise order_exceptions.IdempotencyKeyReused()
        if record.state == COMPLETED and record.answer is not None:
            return Claim(replay=detached(record.answer))
        if record.locked_until > now:
            raise order_exceptions.IdempotencyKeyInFlight()
        self._keys.put((user_id, key), dataclasses.replace(record, locked_until=now + IDEMPOTENCY_LEASE))
        return Claim()

    def complete(self, *, user_id: uuid.UUID, key: str, order: order_model.Order) -> None:
        record = self._keys.get((user_id, key))
        if record is None:
            raise KeyError((user_id, key))
        self._keys.put((user_id, key), dataclasses.replace(record, state=COMPLETED, answer=detached(order)))

    def forget(self, *, user_id: uuid.UUID, key: str) -> None:
        record = self._keys.get((user_id, key))
        if record is not None and record.state == IN_FLIGHT:
            self._keys.delete((user_id, key))


class FakeOrderUnitOfWork(FakeUnitOfWork):
    orders: order_ports.OrderRepository
    idempotency: order_ports.IdempotencyStore

    def __init__(self, store: OrderStore, *, write: bool) -> None:
        super().__init__(store, write=write)
        self._store = store

    def _open(self) -> None:
        self.orders = FakeOrderRepository(self._stage(self._store.orders), self.seen)
        self.idempotency = FakeIdempotencyStore(self._stage(self._store.keys))

    def add_and_commit(self, order: order_model.Order) -> None:
        self.orders.add(order)
        self.commit()


class OrderStore(Store):
    """The order context's storage and its unit-of-work factory."""

    def __init__(self) -> None:
        super().__init__()
        self.orders: Table[uuid.UUID, order_model.Order] = Table()
        self.keys: Table[tuple[uuid.UUID, str], KeyRecord] = Table()

    def __call__(self, *, write: bool = True) -> FakeOrderUnitOfWork:
        return FakeOrderUnitOfWork(self, write=write)


def fail_commits_that_place_orders(uow: Any) -> None:
    """A ``before_commit`` hook: the commit that would save a newly placed order fails."""
    if any(isinstance(event, order_events.OrderPlaced) for aggregate in uow.seen for event in aggregate.events):
        raise CommitFailed("the order database went away")


if TYPE_CHECKING:  # mypy proves the fakes implement the ports they stand in for
    _factory: order_ports.UnitOfWorkFactory = OrderStore()
