"""The in-process implementation of the published :class:`~contexts.order.api.OrderApi`."""

from __future__ import annotations

import uuid

from contexts.order.api import OrderDTO
from contexts.order.application.handlers import GetOrder, GetOrderHandler


class OrderFacade:
    def __init__(self, *, get_order: GetOrderHandler) -> None:
        self._get_order = get_order

    def get_order(self, order_id: uuid.UUID) -> OrderDTO:
        return self._get_order(GetOrder(order_id, viewer=None))
