"""Running a service's subscribers on the events that reach it through the broker.

One background thread holds one connection and consumes the queue of every subscriber the
service hosts. Each message runs the handler ``(subscriber name, envelope)`` in that thread:

- it returns → the message is acked;
- it raises, attempts left → the message is rejected, and the broker parks it in the
  subscriber's retry queue for the layout's ``retry_delay``, then hands it back;
- it raises on the last attempt → the message is copied, confirmed, to the subscriber's
  dead-letter queue (with the attempts and the error in its headers), then acked.

Delivery is at least once: a message in hand when the connection drops comes back, so the
handler must make a repeat harmless, as the inbox does for subscribers. The thread survives
the broker going away: it reconnects with a jittered exponential backoff, declares the
layout again and resumes consuming, without anyone's help. The backoff stops growing at a
couple of seconds (``RECONNECT_MAX_DELAY``): a consumer tries a connection that often during an
outage, a trifle for the broker, and resumes at most that long after the broker is back
(with a 30 s ceiling it could sit idle for half a minute after a short outage, its queues
filling meanwhile).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from functools import partial
from typing import Any

import structlog

from infrastructure.backoff import equal_jitter
from infrastructure.events.broker._kombu import Connection, Consumer
from infrastructure.events.broker.layout import DEFAULT_EXCHANGE, QueueLayout
from infrastructure.events.broker.publisher import ConfirmedLink
from infrastructure.observability.metrics import DEAD, DONE, FAILED, REPEATED, Metrics

logger = structlog.get_logger(__name__)

# Called with the subscriber, the message's envelope and the attempt (1 for the first).
# Runs a message's delivery; False when the subscriber's inbox refused it as a repeat.
Handler = Callable[[str, dict[str, Any], int], bool | None]

MAX_ERROR_LENGTH = 1000
RECONNECT_MAX_DELAY = 2.0
WARNING_INTERVAL = 60.0

# What a dead letter carries besides the message as it was published (see :mod:`.dead_letters`).
SUBSCRIBER_HEADER = "x-shop-subscriber"
ATTEMPTS_HEADER = "x-shop-attempts"
ERROR_HEADER = "x-shop-error"  # repr() of the last attempt's error, its last MAX_ERROR_LENGTH characters
# The properties of the message as published (see :class:`.BrokerPublisher`) that a copy keeps.
KEPT_PROPERTIES = ("message_id", "type", "correlation_id")


def forwarded_properties(message: Any, headers: dict[str, Any]) -> dict[str, Any]:
    """The properties with which to publish a copy of ``message``: its own (the event's id,
    type and request id), with ``headers``."""
    properties = {key: message.properties[key] for key in KEPT_PROPERTIES if key in message.properties}
    properties["headers"] = headers
    return properties


class BrokerConsumer:
    def __init__(
        self,
        url: str,
        layout: QueueLayout,
        handler: Handler,
        *,
        subscribers: Iterable[str] | None = None,
        max_attempts: int = 5,
        prefetch: int = 16,
        heartbeat: float = 60.0,
        connect_timeout: float = 5.0,
        reconnect_delay: float = 0.5,
        reconnect_max_delay: float = RECONNECT_MAX_DELAY,
        poll_interval: float = 1.0,
        warning_interval: float = WARNING_INTERVAL,
        transient: Callable[[Exception], bool] = lambda _error: False,
        metrics: Metrics | None = None,
    ) -> None:
        """``transient``: failures that say a dependency is away (its database, a server), not
        that the message is bad; they are retried however long it takes, never dead-lettered.
        ``subscribers``: the ones this service hosts (default: every one in the layout,
        which is declared whole anyway). ``prefetch``: unacked messages per subscriber queue.
        ``heartbeat`` must exceed the longest handler run: the handler runs in the thread that
        would answer the broker's heartbeats (a broker that misses two drops the connection,
        and the message comes back)."""
        self._url = url
        self._metrics = metrics or Metrics()
        self._transient = transient
        self._layout = layout
        self._handler = handler
        self._subscribers = list(layout.subscriptions if subscribers is None else subscribers)
        unknown = set(self._subscribers) - set(layout.subscriptions)
        if unknown:
            raise ValueError(f"subscribers not in the layout: {sorted(unknown)}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._max_attempts = max_attempts
        self._prefetch = prefetch
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._reconnect_delay = reconnect_delay
        self._reconnect_max_delay = reconnect_max_delay
        self._poll_interval = poll_interval
        self._warning_interval = warning_interval
        self._warned_at = 0.0  # time.monotonic() of the last warning of a failure
        self._dead_letters = ConfirmedLink(
            url, prepare=layout.declare, connect_timeout=connect_timeout, confirm_timeout=10.0
        )
        self._stopping = threading.Event()
        self._consuming = threading.Event()
        self._failures = 0
        self._thread: threading.Thread | None = None

    @property
    def consuming(self) -> bool:
        """Whether it is connected and consuming now."""
        return self._consuming.is_set()

    @property
    def started(self) -> bool:
        """Whether it runs (consuming, or reconnecting to do so)."""
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="broker-consumer", daemon=True)
        self._thread.start()
        logger.info("broker.consumer_started", subscribers=self._subscribers)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish and settle the message in hand, hand the prefetched ones back, disconnect."""
        if self._thread is None:
            return
        self._stopping.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("broker.consumer_still_running")
        self._thread = None
        self._dead_letters.close()
        logger.info("broker.consumer_stopped")

    # -- the consuming thread ---------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._consume_until_stopped()
            except Exception as error:  # noqa: BLE001 - any failure means: reconnect and go on
                self._failures += 1
                delay = self._backoff()
                now = time.monotonic()
                if self._failures == 1 or now - self._warned_at >= self._warning_interval:
                    self._warned_at, log = now, logger.warning
                else:
                    log = logger.debug
                log(
                    "broker.consumer_disconnected",
                    error=repr(error),
                    failures=self._failures,
                    retry_in=round(delay, 2),
                )
                self._stopping.wait(delay)

    def _backoff(self) -> float:
        return equal_jitter(self._failures, self._reconnect_delay, self._reconnect_max_delay)

    def _consume_until_stopped(self) -> None:
        connection = Connection(self._url, heartbeat=self._heartbeat, connect_timeout=self._connect_timeout)
        try:
            connection.ensure_connection(max_retries=0)  # one attempt: _run owns retrying
            consumers = self._start_consuming(connection.channel())
            self._consuming.set()
            self._failures = 0
            logger.info("broker.consuming", subscribers=self._subscribers)
            self._drain(connection)
            for consumer in consumers:
                consumer.cancel()
            # Closing hands back whatever was prefetched and not settled.
            connection.release()
        except BaseException:
            connection.collect()
            raise
        finally:
            self._consuming.clear()

    def _start_consuming(self, channel: Any) -> list[Any]:
        self._layout.declare(channel)
        consumers = [
            Consumer(
                channel,
                queues=[self._layout.consumer_queue(subscriber)],
                on_message=partial(self._on_message, subscriber),
                prefetch_count=self._prefetch,
                auto_declare=False,
            )
            for subscriber in self._subscribers
        ]
        for consumer in consumers:
            consumer.consume()
        return consumers

    def _drain(self, connection: Any) -> None:
        while not self._stopping.is_set():
            with suppress(TimeoutError):  # nothing arrived: time to look at the stop flag
                connection.drain_events(timeout=self._poll_interval)
            connection.heartbeat_check()

    # -- one message ------------------------------------------------------------------------

    def _on_message(self, subscriber: str, message: Any) -> None:
        if self._stopping.is_set():
            message.requeue()  # not started: another consumer, or this one restarted, takes it
            return
        attempt = self._attempt(subscriber, message)
        queue = self._layout.queue(subscriber)
        redelivered = attempt > 1 or bool(message.delivery_info.get("redelivered"))
        log = logger.bind(subscriber=subscriber, event_id=message.properties.get("message_id"), attempt=attempt)
        started = time.perf_counter()
        try:
            first = self._handler(subscriber, json.loads(message.body), attempt)
        except Exception as error:  # noqa: BLE001 - any failure of a handler is retried, then dead-lettered
            if attempt < self._max_attempts or self._transient(error):
                log.warning("broker.delivery_failed", error=repr(error))
                message.reject(requeue=False)  # the broker moves it to the retry queue
                self._settled(subscriber, queue, started, FAILED, "retried", redelivered)
            else:
                log.error("broker.dead_lettered", error=repr(error))
                self._dead_letter(subscriber, message, attempt, error)
                message.ack()
                self._settled(subscriber, queue, started, DEAD, "dead_lettered", redelivered)
        else:
            message.ack()
            self._settled(subscriber, queue, started, REPEATED if first is False else DONE, "acked", redelivered)

    def _settled(
        self, subscriber: str, queue: str, started: float, outcome: str, settled: str, redelivered: bool
    ) -> None:
        """Count a message as the subscriber's delivery (as the dispatcher counts its own) and
        as what the queue saw."""
        self._metrics.delivered(subscriber, outcome, time.perf_counter() - started)
        self._metrics.consumed(queue, settled, redelivered=redelivered)

    def _attempt(self, subscriber: str, message: Any) -> int:
        """This delivery's attempt: one more than the rejections the broker has counted."""
        queue = self._layout.queue(subscriber)
        deaths = (message.headers or {}).get("x-death") or []
        rejected = sum(
            int(death.get("count", 0))
            for death in deaths
            if death.get("queue") == queue and death.get("reason") == "rejected"
        )
        return rejected + 1

    def _dead_letter(self, subscriber: str, message: Any, attempts: int, error: Exception) -> None:
        headers = {
            **(message.headers or {}),
            SUBSCRIBER_HEADER: subscriber,
            ATTEMPTS_HEADER: attempts,
            ERROR_HEADER: repr(error)[-MAX_ERROR_LENGTH:],
        }
        self._dead_letters.send(
            message.body,
            exchange=DEFAULT_EXCHANGE,
            routing_key=self._layout.dead_queue(subscriber),
            properties=forwarded_properties(message, headers),
        )
