"""What the events need on the broker, declared idempotently by every publisher and consumer.

One durable topic exchange takes every event, its type as routing key. Each named subscriber
gets three quorum queues, all durable:

- ``<prefix>.<subscriber>``, bound to the event types the subscriber takes. A message its
  handler fails on is rejected, and the broker dead-letters it (through the default exchange)
  to
- ``<prefix>.<subscriber>.retry``, which holds it for ``retry_delay`` (queue TTL) and then
  dead-letters it back to the subscriber's queue. The broker moves it both ways and counts
  each rejection in the message's ``x-death`` header, which is how a consumer knows the
  attempt; "at-least-once" dead-lettering keeps a move from losing it.
- ``<prefix>.<subscriber>.dead``, where the consumer puts a message once its attempts are used
  up, for an operator to look at and move back (``shop events dead|retry``, see
  :mod:`.dead_letters`).

The whole map is declared by every service, whatever subset it consumes: a publisher that
starts before the consumers of an event must find their queues, or the broker would drop it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # kombu is imported by the methods that make its entities: every process builds a QueueLayout,
    # only those given a broker (EVENTS_BROKER_URL) ever declare it.
    from infrastructure.events.broker._kombu import Exchange, Queue

QUORUM = {"x-queue-type": "quorum"}
# Quorum queues move dead letters safely only when they may refuse publishes when full.
SAFE_DEAD_LETTERING = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
DEFAULT_EXCHANGE = ""


class QueueLayout:
    """The exchange and each subscriber's queues.

    RabbitMQ refuses to redeclare a queue with other arguments: changing ``retry_delay`` or
    ``queue_prefix`` needs the old retry queues deleted (once empty) or a new prefix.
    """

    def __init__(
        self,
        subscriptions: Mapping[str, Iterable[str]],
        *,
        exchange: str = "shop.events",
        queue_prefix: str = "shop",
        retry_delay: float = 5.0,
    ) -> None:
        """``subscriptions``: subscriber name → the event types it takes ("order.OrderPlaced")."""
        self.subscriptions = {name: frozenset(types) for name, types in subscriptions.items()}
        self.exchange = exchange
        self.queue_prefix = queue_prefix
        self.retry_delay = retry_delay

    def event_types(self) -> frozenset[str]:
        """Every event type some subscriber takes: what a relay has to publish."""
        return frozenset().union(*self.subscriptions.values())

    def queue(self, subscriber: str) -> str:
        return f"{self.queue_prefix}.{subscriber}"

    def retry_queue(self, subscriber: str) -> str:
        return f"{self.queue(subscriber)}.retry"

    def dead_queue(self, subscriber: str) -> str:
        return f"{self.queue(subscriber)}.dead"

    def queue_names(self) -> list[str]:
        """Every queue of the layout, e.g. for an operator's tooling or a test's cleanup."""
        return [
            name
            for subscriber in self.subscriptions
            for name in (self.queue(subscriber), self.retry_queue(subscriber), self.dead_queue(subscriber))
        ]

    def declare(self, channel: Any) -> None:
        """Create whatever is missing; what exists with the same arguments is left as it is.

        Bindings are only ever added: a type a subscriber no longer takes keeps arriving (and
        dead-letters once its handler rejects it) until its binding is removed by hand.
        """
        self.exchange_entity()(channel).declare()
        for subscriber in self.subscriptions:
            for queue in self._queues_of(subscriber):
                queue(channel).declare()

    def exchange_entity(self) -> Exchange:
        from infrastructure.events.broker._kombu import Exchange

        return Exchange(self.exchange, type="topic", durable=True)

    def consumer_queue(self, subscriber: str) -> Queue:
        """The subscriber's queue, to consume from once declared (so without bindings)."""
        from infrastructure.events.broker._kombu import Queue

        return Queue(self.queue(subscriber), durable=True, queue_arguments=self._main_arguments(subscriber))

    def _queues_of(self, subscriber: str) -> list[Queue]:
        from infrastructure.events.broker._kombu import Queue, binding

        exchange = self.exchange_entity()
        main = Queue(
            self.queue(subscriber),
            durable=True,
            queue_arguments=self._main_arguments(subscriber),
            bindings=[
                binding(exchange, routing_key=event_type) for event_type in sorted(self.subscriptions[subscriber])
            ],
        )
        retry = Queue(
            self.retry_queue(subscriber),
            durable=True,
            queue_arguments={
                **QUORUM,
                **SAFE_DEAD_LETTERING,
                "x-message-ttl": round(self.retry_delay * 1000),
                "x-dead-letter-exchange": DEFAULT_EXCHANGE,
                "x-dead-letter-routing-key": self.queue(subscriber),
            },
        )
        dead = Queue(self.dead_queue(subscriber), durable=True, queue_arguments=dict(QUORUM))
        return [main, retry, dead]

    def _main_arguments(self, subscriber: str) -> dict[str, Any]:
        return {
            **QUORUM,
            **SAFE_DEAD_LETTERING,
            "x-dead-letter-exchange": DEFAULT_EXCHANGE,
            "x-dead-letter-routing-key": self.retry_queue(subscriber),
        }


@dataclass(frozen=True)
class QueueStatus:
    """A subscriber's queues as the broker counts them; None where the queue does not exist
    (no process declared it yet)."""

    subscriber: str
    queue: str
    ready: int | None  # messages waiting in the subscriber's queue (not those in a consumer's hands)
    consumers: int | None
    retrying: int | None  # messages its retry queue holds until their next attempt
    dead_lettered: int | None  # messages in its dead-letter queue (not those a consumer of it holds)
    dead_queue: str
    dead_consumers: int | None  # consumers of its dead-letter queue: none, unless something takes its letters


def queue_status(
    url: str, layout: QueueLayout, subscribers: Iterable[str], *, connect_timeout: float = 5.0
) -> list[QueueStatus]:
    """Ask the broker about each subscriber's queue, retry queue and dead-letter queue, declaring nothing
    (a passive declare answers the counts, or that the queue is missing). Raises what kombu
    raises when the broker does not answer."""
    from infrastructure.events.broker._kombu import Connection

    with Connection(url, connect_timeout=connect_timeout) as connection:
        connection.ensure_connection(max_retries=0)
        rows = []
        for subscriber in subscribers:
            main = queue_counts(connection, layout.queue(subscriber))
            retry = queue_counts(connection, layout.retry_queue(subscriber))
            dead = queue_counts(connection, layout.dead_queue(subscriber))
            rows.append(
                QueueStatus(
                    subscriber,
                    layout.queue(subscriber),
                    ready=main[0] if main else None,
                    consumers=main[1] if main else None,
                    retrying=retry[0] if retry else None,
                    dead_lettered=dead[0] if dead else None,
                    dead_queue=layout.dead_queue(subscriber),
                    dead_consumers=dead[1] if dead else None,
                )
            )
        return rows


def queue_counts(connection: Any, name: str) -> tuple[int, int] | None:
    """(messages ready, consumers) of the queue ``name``, or None if it does not exist. A
    channel of its own: the broker closes the channel on which a passive declare missed."""
    channel = connection.channel()
    try:
        _, messages, consumers = channel.queue_declare(queue=name, passive=True)
    except connection.channel_errors:
        return None
    finally:
        with suppress(*connection.channel_errors, *connection.connection_errors):
            channel.close()
    return int(messages), int(consumers)
