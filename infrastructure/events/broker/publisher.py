"""Sending envelopes to the broker so that a returned call means the broker has them.

Every message is persistent (delivery mode 2), published with ``mandatory`` on a channel in
confirm mode, and waited for: the call returns once the broker has routed it to at least one
queue and stored it, and raises :class:`PublishFailed` otherwise (refused, unroutable, not
confirmed in time, broker down). That is what makes the outbox the relay's retry queue: an
outbox delivery that publishes is done only when the broker holds the event, and a failure is
retried by the dispatcher with its backoff while the outbox keeps every event.

That backoff grows to minutes, so an outage would be followed by as long a wait before the
backlog moves. The publisher therefore knows when the broker is away (it could not be reached:
see :attr:`PublishFailed.unreachable`) and says when it is back
(:meth:`BrokerPublisher.when_back`): the first publish confirmed after that, or
:meth:`BrokerPublisher.check_back`, which a background task calls to reconnect while nothing
else would publish. A message the broker answered but refused (nacked, returned unroutable,
not confirmed in time) does not make it away: a reconnect would succeed at once, and saying
"back" then would make every retry due at each check, defeating the backoff.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext, suppress
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry.trace import SpanKind

from infrastructure.events.broker._kombu import Connection, OperationalError, Producer
from infrastructure.events.broker.layout import QueueLayout
from infrastructure.observability.metrics import Metrics
from infrastructure.observability.tracing import TRACER_NAME

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = structlog.get_logger(__name__)

PERSISTENT = 2
JSON = "application/json"


class PublishFailed(Exception):
    """The broker did not confirm the message: it may or may not have it, so send it again.

    ``unreachable`` says the broker could not be reached (connecting failed, or the connection
    broke), as opposed to a broker that answered and refused the message: only the former is
    an outage whose end is worth announcing."""

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@lru_cache(maxsize=None)
def connection_errors(url: str) -> tuple[type[BaseException], ...]:
    """The errors that say the broker at ``url`` could not be reached or the connection broke.

    Connecting fails as kombu's OperationalError; a connection that breaks, with the
    transport's own errors. A confirm not received in time is a socket timeout, which is among
    those (an OSError) but says the broker is there: it answered the connect. The transport
    tells its errors only through a Connection (never connected here): learnt once per URL (a
    process has one or two), not per link or per reconnection."""
    return (OperationalError, *Connection(url).connection_errors)


@lru_cache(maxsize=None)
def channel_errors(url: str) -> tuple[type[BaseException], ...]:
    """The errors with which the broker at ``url`` refuses an operation and closes the channel
    (a queue missing or locked, a precondition failed); learnt as :func:`connection_errors`."""
    return tuple(Connection(url).channel_errors)


class ConfirmedLink:
    """One connection whose channel publishes in confirm mode, one message at a time.

    Opened on first use and kept; dropped on any failure, so the next call starts afresh
    (``prepare`` then runs again, e.g. to declare the layout). A failure on a connection
    kept from an earlier call may only mean it went stale (the broker restarted, an idle
    socket was cut), so such a call is tried once more on a new connection before it fails.
    """

    def __init__(
        self,
        url: str,
        *,
        prepare: Callable[[Any], None],
        connect_timeout: float,
        confirm_timeout: float,
    ) -> None:
        self._url = url
        self._prepare = prepare
        self._connect_timeout = connect_timeout
        self._confirm_timeout = confirm_timeout
        # kombu channels are not thread-safe, and a confirm must not be taken for another's.
        self._lock = threading.Lock()
        self._connection: Any = None
        self._producer: Any = None

    def send(self, body: str | bytes, *, exchange: str, routing_key: str, properties: Mapping[str, Any]) -> None:
        with self._lock:
            kept = self._producer is not None
            try:
                self._send(body, exchange, routing_key, properties)
            except Exception as first:
                self._drop()
                if not kept:
                    raise self._failed(routing_key, first) from first
                logger.info("broker.reconnecting_publisher", error=repr(first))
                try:
                    self._send(body, exchange, routing_key, properties)
                except Exception as second:
                    self._drop()
                    raise self._failed(routing_key, second) from second

    def _failed(self, routing_key: str, error: Exception) -> PublishFailed:
        """The failure of a call's last attempt, which always connected afresh: unreachable
        when that connection failed or broke, not when the broker refused the message."""
        unreachable = isinstance(error, connection_errors(self._url)) and not isinstance(error, TimeoutError)
        return PublishFailed(f"broker did not confirm {routing_key!r}: {error!r}", unreachable=unreachable)

    def open(self) -> None:
        """Connect now, unless connected (declaring the layout); raises when the broker does
        not answer. The next :meth:`send` uses the connection."""
        with self._lock:
            if self._producer is None:
                self._connect()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                with suppress(Exception):  # closing politely is a courtesy to the broker
                    self._connection.release()
            self._connection, self._producer = None, None

    def _send(self, body: str | bytes, exchange: str, routing_key: str, properties: Mapping[str, Any]) -> None:
        if self._producer is None:
            self._connect()
        self._producer.publish(
            body,
            exchange=exchange,
            routing_key=routing_key,
            delivery_mode=PERSISTENT,
            mandatory=True,
            content_type=JSON,
            content_encoding="utf-8",
            confirm_timeout=self._confirm_timeout,
            **properties,
        )

    def _connect(self) -> None:
        connection = Connection(
            self._url,
            connect_timeout=self._connect_timeout,
            transport_options={"confirm_publish": True},
        )
        try:
            connection.ensure_connection(max_retries=0)  # one attempt: the caller owns retrying
            channel = connection.channel()
            self._prepare(channel)
        except BaseException:
            connection.collect()
            raise
        self._connection, self._producer = connection, Producer(channel, auto_declare=False)

    def _drop(self) -> None:
        """Forget the connection without talking to the broker (it may be gone)."""
        if self._connection is not None:
            self._connection.collect()
        self._connection, self._producer = None, None


class BrokerPublisher:
    """Relays outbox envelopes to the layout's topic exchange, routing key = event type.

    The layout is declared on every (re)connection, so events published before any consumer
    ran still wait in their subscribers' queues. An event type nobody takes is unroutable and
    raises: relay only :meth:`QueueLayout.event_types`.

    A publish holds its connection until the broker confirms (a disk write away), so threads
    publishing at once each take one of ``connections``, opened as they are first needed;
    beyond that many, a publish waits for one to be free. Match the dispatcher's workers.
    """

    def __init__(
        self,
        url: str,
        layout: QueueLayout,
        *,
        connections: int = 4,
        connect_timeout: float = 5.0,
        confirm_timeout: float = 10.0,
        metrics: Metrics | None = None,
        tracing: TracerProvider | None = None,
    ) -> None:
        """``tracing``: a span per message published; None, none."""
        self._exchange = layout.exchange
        self._tracer = tracing.get_tracer(TRACER_NAME) if tracing is not None else None
        self._metrics = metrics or Metrics()
        self._links = [
            ConfirmedLink(url, prepare=layout.declare, connect_timeout=connect_timeout, confirm_timeout=confirm_timeout)
            for _ in range(connections)
        ]
        # Last in, first out: the connections in use stay warm, the spare ones are never opened.
        self._free: queue.LifoQueue[ConfirmedLink] = queue.LifoQueue()
        for link in reversed(self._links):
            self._free.put(link)
        self._away = False  # the broker could not be reached, and has not been since
        self._away_lock = threading.Lock()
        self._back_listeners: list[Callable[[], None]] = []

    @property
    def reachable(self) -> bool:
        """Whether the broker took the last message or connection attempt (True before any)."""
        return not self._away

    def when_back(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever the broker takes messages or connections again after it
        could not be reached (in the thread that found out; a failing listener is logged):
        what waits for a retry after the outage can go now."""
        self._back_listeners.append(listener)

    def check_back(self) -> None:
        """While the broker is away: connect (one attempt) and, if it answers, say it is back.
        Does nothing while publishes succeed; for a task repeated every second or so."""
        if not self._away:
            return
        link = self._free.get()
        try:
            link.open()
        except Exception as error:  # noqa: BLE001 - any failure: still away, the next check tries again
            logger.debug("broker.still_away", error=repr(error))
            return
        finally:
            self._free.put(link)
        self._back()

    def publish(self, envelope: Mapping[str, Any]) -> None:
        """Send one envelope (``Envelope.to_dict()``, as the outbox stores it); raises
        :class:`PublishFailed` unless the broker confirmed it. Thread-safe."""
        trace = {str(key): str(value) for key, value in (envelope.get("trace") or {}).items()}
        properties: dict[str, Any] = {
            "message_id": str(envelope["id"]),
            "type": str(envelope["type"]),
            "headers": {**trace, "event_version": int(envelope["version"])},
        }
        if "request_id" in trace:
            properties["correlation_id"] = trace["request_id"]
        link = self._free.get()
        try:
            with self._publishing(envelope):
                link.send(
                    json.dumps(envelope),
                    exchange=self._exchange,
                    routing_key=str(envelope["type"]),
                    properties=properties,
                )
        except PublishFailed as failed:
            if failed.unreachable:
                self._away = True
            raise
        finally:
            self._free.put(link)
        self._metrics.published(str(envelope["type"]))
        if self._away:
            self._back()

    def _publishing(self, envelope: Mapping[str, Any]) -> AbstractContextManager[Any]:
        """The span of one publish, under the relay's delivery of the event (its consumers'
        spans continue the trace the envelope carries, not this one)."""
        if self._tracer is None:
            return nullcontext()
        return self._tracer.start_as_current_span(
            f"publish {envelope['type']}",
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "rabbitmq", "messaging.destination.name": self._exchange},
        )

    def _back(self) -> None:
        """The broker took a message or a connection after it could not be reached: tell the
        listeners, once."""
        with self._away_lock:
            if not self._away:
                return  # another thread found out first
            self._away = False
        logger.info("broker.back")
        for listener in self._back_listeners:
            try:
                listener()
            except Exception:
                # The publish that found out succeeded and must not fail; the backlog still
                # goes at its retry times.
                logger.exception("broker.back_listener_failed")

    def close(self) -> None:
        for link in self._links:
            link.close()
