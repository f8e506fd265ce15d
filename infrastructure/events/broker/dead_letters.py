"""The broker's dead letters: listed, and moved back to their subscribers' queues.

A consumer puts a message whose attempts are used up in its subscriber's dead-letter queue
(``<prefix>.<subscriber>.dead``, see :mod:`.consumer`), with the attempts and the error in its
headers. An operator lists them and, once the cause is fixed, sends them back.

Both go through each dead-letter queue once, message by message: take it, publish it
(confirmed) where it goes, then acknowledge it. Listing sends every message to the back of its
own queue, so after the pass the queue holds what it held, in the same order; it costs one
confirmed publish per message. It does not peek by taking messages unacknowledged and handing
them back: quorum queues count such a return as a failed delivery (RabbitMQ 4.0 to 4.2), and
past their default delivery limit (20) they drop the message, so twenty listings would lose
every dead letter. A message is acknowledged only once its copy is confirmed, so a message may
end up twice, never nowhere: a pass cut short (the broker gone, the command killed) between the
two, or a copy published again because its confirm was lost with the connection
(:class:`.ConfirmedLink` sends once more). Twice in a subscriber's queue is harmless, as the
inbox makes a repeat (see :mod:`.consumer`).

One pass at a time per dead-letter queue: two at once would list some messages twice or not at
all, reorder them, and a retry could miss the message it was asked for. A pass holds an
exclusive, auto-deleted ``<dead-letter queue>.lock`` queue (the broker drops it with the pass's
connection, however the pass ends), and another pass finding it held raises :class:`Busy`.
Messages that a consumer of a dead-letter queue holds unacknowledged are neither counted nor
listed: the pass reports each such queue with its consumers (:attr:`DeadLetterPass.consumed`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from infrastructure.events.broker._kombu import Connection, Queue
from infrastructure.events.broker.consumer import ATTEMPTS_HEADER, ERROR_HEADER, forwarded_properties
from infrastructure.events.broker.layout import DEFAULT_EXCHANGE, QueueLayout, queue_counts
from infrastructure.events.broker.publisher import ConfirmedLink

RESOURCE_LOCKED = 405  # AMQP: the queue is exclusive to another connection


@dataclass(frozen=True)
class BrokerDeadLetter:
    """A message in a subscriber's dead-letter queue, as the consumer put it there; None where
    the message does not say, or says it in another form (one put there by other means)."""

    subscriber: str
    event_id: str | None
    event_type: str | None
    attempts: int | None
    error: str | None


@dataclass(frozen=True)
class DeadLetterPass:
    """What one pass over the dead-letter queues found: the letters, oldest first per
    subscriber, and each dead-letter queue that something consumes, with its consumers (their
    unacknowledged messages are not among the letters)."""

    letters: tuple[BrokerDeadLetter, ...]
    consumed: tuple[tuple[str, int], ...]


class Busy(Exception):
    """Another pass holds the lock of a dead-letter queue."""

    def __init__(self, queue: str) -> None:
        super().__init__(f"another pass over the dead letters is running on {queue}")
        self.queue = queue


def dead_letters(
    url: str, layout: QueueLayout, subscribers: Iterable[str], *, connect_timeout: float = 5.0
) -> DeadLetterPass:
    """The dead letters of ``subscribers``; each stays where it is."""
    letters, consumed = _pass(url, layout, subscribers, lambda _letter: False, connect_timeout)
    return DeadLetterPass(tuple(letter for letter, _back in letters), consumed)


def retry_dead_letters(
    url: str,
    layout: QueueLayout,
    subscribers: Iterable[str],
    event_ids: Collection[str] | None = None,
    *,
    connect_timeout: float = 5.0,
) -> DeadLetterPass:
    """Move the dead letters of ``subscribers`` whose event is one of ``event_ids`` (all of
    them with None) back to their subscriber's queue, with their attempts reset; the others
    stay where they are. Its letters are those moved."""
    wanted = None if event_ids is None else {str(event_id) for event_id in event_ids}
    letters, consumed = _pass(
        url, layout, subscribers, lambda letter: wanted is None or letter.event_id in wanted, connect_timeout
    )
    return DeadLetterPass(tuple(letter for letter, back in letters if back), consumed)


def _pass(
    url: str,
    layout: QueueLayout,
    subscribers: Iterable[str],
    send_back: Callable[[BrokerDeadLetter], bool],
    connect_timeout: float,
) -> tuple[list[tuple[BrokerDeadLetter, bool]], tuple[tuple[str, int], ...]]:
    """Each dead letter there was when its queue's turn came, and whether it went back to its
    subscriber's queue (or else to the back of its own); and the dead-letter queues consumed."""
    subscribers = list(subscribers)
    link = ConfirmedLink(
        url,
        prepare=lambda _channel: None,  # the queues are there or skipped: an operator's look declares nothing
        connect_timeout=connect_timeout,
        confirm_timeout=10.0,
    )
    seen: list[tuple[BrokerDeadLetter, bool]] = []
    consumed: list[tuple[str, int]] = []
    try:
        with Connection(url, connect_timeout=connect_timeout) as connection:
            connection.ensure_connection(max_retries=0)
            for subscriber in subscribers:  # every lock first: a pass refused has moved nothing
                _lock(connection, layout.dead_queue(subscriber))
            for subscriber in subscribers:
                dead_queue = layout.dead_queue(subscriber)
                counts = queue_counts(connection, dead_queue)
                if counts is None:
                    continue  # not declared yet: nothing was dead-lettered there
                ready, consumers = counts
                if consumers:
                    consumed.append((dead_queue, consumers))
                if ready:
                    seen.extend(_go_through(connection, link, layout, subscriber, ready, send_back))
    finally:
        link.close()
    return seen, tuple(consumed)


def _lock(connection: Any, dead_queue: str) -> None:
    """Declare the queue's lock, exclusive to this connection; :class:`Busy` if another holds it."""
    channel = connection.channel()
    try:
        channel.queue_declare(queue=f"{dead_queue}.lock", exclusive=True, auto_delete=True)
    except connection.channel_errors as error:
        if getattr(error, "reply_code", None) == RESOURCE_LOCKED:
            raise Busy(dead_queue) from error
        raise
    finally:
        with suppress(*connection.channel_errors, *connection.connection_errors):
            channel.close()


def _go_through(
    connection: Any,
    link: ConfirmedLink,
    layout: QueueLayout,
    subscriber: str,
    ready: int,
    send_back: Callable[[BrokerDeadLetter], bool],
) -> list[tuple[BrokerDeadLetter, bool]]:
    dead_queue = layout.dead_queue(subscriber)
    seen = []
    channel = connection.channel()
    try:
        source = Queue(dead_queue)(channel)
        for _ in range(ready):  # those there now: the copies go in behind them
            message = source.get(no_ack=False)
            if message is None:
                break
            letter = _letter(subscriber, message)
            back = send_back(letter)
            link.send(
                message.body,
                exchange=DEFAULT_EXCHANGE,
                routing_key=layout.queue(subscriber) if back else dead_queue,
                properties=forwarded_properties(message, _headers(message, fresh=back)),
            )
            message.ack()
            seen.append((letter, back))
    finally:
        with suppress(*connection.channel_errors, *connection.connection_errors):
            channel.close()
    return seen


def _letter(subscriber: str, message: Any) -> BrokerDeadLetter:
    """What the message says; total: whatever a foreign message holds, it is listed (and moved)
    like the others, never the cause of a pass failing halfway."""
    headers: Mapping[str, Any] = message.headers or {}
    properties: Mapping[str, Any] = message.properties
    return BrokerDeadLetter(
        subscriber=subscriber,
        event_id=_text(properties.get("message_id")),
        event_type=_text(properties.get("type")),
        attempts=_count(headers.get(ATTEMPTS_HEADER)),
        error=_text(headers.get(ERROR_HEADER)),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _headers(message: Any, *, fresh: bool) -> dict[str, Any]:
    """The message's headers (a quorum queue sets ``x-delivery-count`` afresh on each delivery,
    whatever a copy carries); ``fresh``: without the broker's and the consumer's bookkeeping
    (``x-death``, ``x-shop-*``: they all start ``x-``), so that its next attempt counts as its
    first."""
    headers = dict(message.headers or {})
    return {key: value for key, value in headers.items() if not key.startswith("x-")} if fresh else headers
