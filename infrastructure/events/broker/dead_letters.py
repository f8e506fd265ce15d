"""The broker's dead letters: listed, and moved back to their subscribers' queues.

A consumer puts a message whose attempts are used up in its subscriber's dead-letter queue
(``<prefix>.<subscriber>.dead``, see :mod:`.consumer`), with the attempts and the error in its
headers. An operator lists them and, once the cause is fixed, sends them back.

Both go through each dead-letter queue once, message by message: take it, publish it
(confirmed) where it goes, then acknowledge it. Listing sends every message to the back of its
own queue, so after the pass the queue holds what it held, in the same order. It does not peek
by taking messages unacknowledged and handing them back: quorum queues count such a return as
a failed delivery (RabbitMQ 4.0 to 4.2), and past their default delivery limit (20) they drop
the message, so twenty listings would lose every dead letter. A message is acknowledged only
once its copy is confirmed: a pass cut short (the broker gone, the command killed) leaves at
most one message twice, never none; twice in a subscriber's queue is harmless, as the inbox
makes a repeat (see :mod:`.consumer`). Two passes over one queue at once list some messages
twice or not at all, and lose none.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from infrastructure.events.broker._kombu import Connection, Queue
from infrastructure.events.broker.publisher import ConfirmedLink, connection_errors
from infrastructure.events.broker.topology import DEFAULT_EXCHANGE, Topology, queue_counts


@dataclass(frozen=True)
class BrokerDeadLetter:
    """A message in a subscriber's dead-letter queue, as the consumer put it there; None where
    the message does not say (one put there by other means)."""

    subscriber: str
    event_id: str | None
    event_type: str | None
    attempts: int | None
    error: str | None


def dead_letters(
    url: str, topology: Topology, subscribers: Iterable[str], *, connect_timeout: float = 5.0
) -> list[BrokerDeadLetter]:
    """The dead letters of ``subscribers``, oldest first per subscriber; each stays where it is."""
    return [letter for letter, _back in _pass(url, topology, subscribers, lambda _letter: False, connect_timeout)]


def retry_dead_letters(
    url: str,
    topology: Topology,
    subscribers: Iterable[str],
    event_ids: Collection[str] | None = None,
    *,
    connect_timeout: float = 5.0,
) -> list[BrokerDeadLetter]:
    """Move the dead letters of ``subscribers`` whose event is one of ``event_ids`` (all of
    them with None) back to their subscriber's queue, with their attempts reset; the others
    stay where they are. Returns those moved."""
    wanted = None if event_ids is None else {str(event_id) for event_id in event_ids}
    return [
        letter
        for letter, back in _pass(
            url, topology, subscribers, lambda letter: wanted is None or letter.event_id in wanted, connect_timeout
        )
        if back
    ]


def _pass(
    url: str,
    topology: Topology,
    subscribers: Iterable[str],
    send_back: Callable[[BrokerDeadLetter], bool],
    connect_timeout: float,
) -> list[tuple[BrokerDeadLetter, bool]]:
    """Each dead letter there was when its queue's turn came, and whether it went back to its
    subscriber's queue (or else to the back of its own)."""
    link = ConfirmedLink(
        url,
        prepare=lambda _channel: None,  # the queues are there or skipped: an operator's look declares nothing
        connect_timeout=connect_timeout,
        confirm_timeout=10.0,
        connection_errors=connection_errors(url),
    )
    seen: list[tuple[BrokerDeadLetter, bool]] = []
    try:
        with Connection(url, connect_timeout=connect_timeout) as connection:
            connection.ensure_connection(max_retries=0)
            for subscriber in subscribers:
                dead_queue = topology.dead_queue(subscriber)
                counts = queue_counts(connection, dead_queue)
                if counts is None:
                    continue  # not declared yet: nothing was dead-lettered there
                source = Queue(dead_queue)(connection.channel())
                for _ in range(counts[0]):  # those there now: the copies go in behind them
                    message = source.get(no_ack=False)
                    if message is None:
                        break
                    letter = _letter(subscriber, message)
                    back = send_back(letter)
                    link.send(
                        message.body,
                        exchange=DEFAULT_EXCHANGE,
                        routing_key=topology.queue(subscriber) if back else dead_queue,
                        properties=_properties(message, fresh=back),
                    )
                    message.ack()
                    seen.append((letter, back))
    finally:
        link.close()
    return seen


def _letter(subscriber: str, message: Any) -> BrokerDeadLetter:
    headers: Mapping[str, Any] = message.headers or {}
    attempts = headers.get("x-shop-attempts")
    return BrokerDeadLetter(
        subscriber=subscriber,
        event_id=message.properties.get("message_id"),
        event_type=message.properties.get("type"),
        attempts=int(attempts) if attempts is not None else None,
        error=headers.get("x-shop-error"),
    )


def _properties(message: Any, *, fresh: bool) -> dict[str, Any]:
    """The message's own properties and headers; ``fresh``: without the broker's and the
    consumer's bookkeeping headers (``x-death``, ``x-shop-*``: they all start ``x-``), so that
    its next attempt counts as its first."""
    properties = {
        key: message.properties[key] for key in ("message_id", "type", "correlation_id") if key in message.properties
    }
    headers = dict(message.headers or {})
    properties["headers"] = (
        {key: value for key, value in headers.items() if not key.startswith("x-")} if fresh else headers
    )
    return properties
