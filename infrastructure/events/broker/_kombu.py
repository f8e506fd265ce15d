"""The few kombu classes this package uses, typed as ``Any`` for mypy --strict.

kombu ships ``py.typed`` but leaves most of its functions unannotated, so strict mode would
reject every call into it; its objects cross into this package untyped, from this one place.
"""

from __future__ import annotations

from typing import Any

from kombu import connection, entity, exceptions, messaging

Connection: Any = connection.Connection
Consumer: Any = messaging.Consumer
Producer: Any = messaging.Producer
Exchange: Any = entity.Exchange
Queue: Any = entity.Queue
binding: Any = entity.binding
OperationalError: Any = exceptions.OperationalError
