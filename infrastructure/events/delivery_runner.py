"""How deliveries run: one event handed to one subscriber with its delivery, or several to one
batched subscriber in one shared transaction; a failure recorded for a retry or as dead.

Both the dispatcher (outbox deliveries, in its workers or in the caller's thread) and the broker
consumer (its messages) run deliveries through here, so a delivery is decoded, logged under the
request id of the request that caused its event, and refused by the inbox when repeated, the
same way whichever way it came.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import structlog

from infrastructure.db.unit_of_work import shared_transaction
from infrastructure.events import codec
from infrastructure.events.bus import EventBus
from infrastructure.events.delivery import Delivery, Transaction
from infrastructure.events.delivery_queue import ClaimedDelivery
from infrastructure.events.inbox import AlreadyHandled
from infrastructure.events.outbox import Outbox
from infrastructure.events.retry_policy import RetryPolicy
from infrastructure.observability.metrics import DEAD, DONE, FAILED, REPEATED, Metrics
from infrastructure.observability.tracing import delivery_span
from infrastructure.request_context import bind_request_id, bind_traceparent

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = structlog.get_logger(__name__)

MAX_ERROR_LENGTH = 4000
# Deliveries to one batched subscriber run at most this many to a transaction: an eighth of
# the commits, while a batch holds its context's writer turn on SQLite (which the order
# requests' reservations wait for) no longer than a few deliveries take.
MAX_BATCH = 8


class DeliveryRunner:
    def __init__(
        self,
        bus: EventBus,
        retry: RetryPolicy,
        persistent: Collection[str] = (),
        metrics: Metrics | None = None,
        tracing: TracerProvider | None = None,
    ) -> None:
        """``persistent``: subscribers retried until they succeed, never dead letters (see
        :class:`~infrastructure.events.dispatcher.Dispatcher`). ``tracing``: a span per
        delivery; None, none."""
        self._bus = bus
        self._tracing = tracing
        self._metrics = metrics or Metrics()
        self._retry = retry
        self._persistent = frozenset(persistent)
        self._retry_persistent = replace(retry, max_attempts=None)

    def run_each_or_batch(self, outbox: Outbox, subscriber: str, deliveries: list[ClaimedDelivery]) -> list[bool]:
        """Run a claim's deliveries to one subscriber as the workers would: in batches of up to
        ``MAX_BATCH`` if it is batched, else one by one."""
        if self._bus.batched(subscriber):
            return [
                succeeded
                for start in range(0, len(deliveries), MAX_BATCH)
                for succeeded in self.run_batch(outbox, deliveries[start : start + MAX_BATCH])
            ]
        return [self.run_delivery(outbox, delivery) for delivery in deliveries]

    def run_batch(self, outbox: Outbox, deliveries: Sequence[ClaimedDelivery]) -> list[bool]:
        """Run deliveries to one batched subscriber in one shared transaction; which succeeded.

        Each delivery's unit of work is a savepoint in the shared transaction, its inbox row
        with it, so a repeat (``AlreadyHandled``) undoes only its own savepoint. Any other
        failure, or a failed commit, rolls the whole batch back and every delivery runs again
        on its own through :meth:`run_delivery`: a failure is recorded against the delivery
        that failed, with its own retries and dead letter, and the others take effect; their
        first run left nothing behind, and the inbox refuses what a commit that failed late
        did keep.
        """
        if len(deliveries) > 1:
            started = time.perf_counter()
            try:
                with shared_transaction() as transaction:
                    firsts = [
                        _deliver(
                            self._bus,
                            delivery.subscriber,
                            delivery.envelope,
                            attempt=delivery.attempts + 1,
                            transaction=transaction,
                            log=False,
                            tracing=self._tracing,
                        )
                        for delivery in deliveries
                    ]
                    after_commit = transaction.commit()
            except Exception as error:  # noqa: BLE001 - any failure: the deliveries run one by one
                logger.info(
                    "events.batch_run_one_by_one",
                    subscriber=deliveries[0].subscriber,
                    deliveries=len(deliveries),
                    error=repr(error),
                )
            else:
                _run_after_commit(after_commit)
                # One transaction for all: each delivery is counted with its share of its time.
                share = (time.perf_counter() - started) / len(deliveries)
                repeated = firsts.count(False)
                self._metrics.delivered(deliveries[0].subscriber, DONE, share, len(deliveries) - repeated)
                self._metrics.delivered(deliveries[0].subscriber, REPEATED, share, repeated)
                for delivery, first in zip(deliveries, firsts, strict=True):  # now that they took effect
                    with _under_request_of(delivery.envelope):
                        _log_delivered(delivery.subscriber, delivery.envelope, first, attempt=delivery.attempts + 1)
                return [True] * len(deliveries)
        return [self.run_delivery(outbox, delivery) for delivery in deliveries]

    def run_delivery(self, outbox: Outbox, delivery: ClaimedDelivery) -> bool:
        """Run one delivery; a failure is recorded here, a success is the caller's to record."""
        started = time.perf_counter()
        try:
            first = _deliver(
                self._bus, delivery.subscriber, delivery.envelope, attempt=delivery.attempts + 1, tracing=self._tracing
            )
        except Exception as error:  # noqa: BLE001 - any failure of a subscriber is recorded for a retry
            self._record_failure(outbox, delivery, error, time.perf_counter() - started)
            return False
        self._metrics.delivered(delivery.subscriber, DONE if first else REPEATED, time.perf_counter() - started)
        return True

    def _record_failure(self, outbox: Outbox, delivery: ClaimedDelivery, error: Exception, seconds: float) -> None:
        policy = self._retry_persistent if delivery.subscriber in self._persistent else self._retry
        retry_at = policy.next_attempt(delivery.attempts + 1, datetime.now(timezone.utc))
        self._metrics.delivered(delivery.subscriber, FAILED if retry_at else DEAD, seconds)
        log = _log_of(delivery)
        log.warning(
            "event.delivery_failed" if retry_at else "event.dead_lettered",
            error=repr(error),
            retry_at=retry_at.isoformat() if retry_at else None,
        )
        try:
            outbox.queue.fail(delivery, _describe(error), retry_at=retry_at)
        except Exception:
            # Not lost: its lease runs out and it is tried again.
            log.exception("event.failure_not_recorded")


def _log_of(delivery: ClaimedDelivery) -> Any:
    return _log_of_envelope(delivery.subscriber, delivery.envelope, attempt=delivery.attempts + 1)


def _log_of_envelope(subscriber: str, envelope: Mapping[str, Any], **values: Any) -> Any:
    return logger.bind(event_id=envelope["id"], event_type=envelope["type"], subscriber=subscriber, **values)


@contextmanager
def _under_request_of(envelope: Mapping[str, Any]) -> Iterator[None]:
    """Log under the request id of the request that caused the event, and pass its trace on to
    what the delivery records and calls, also where this process does not trace."""
    trace = envelope.get("trace", {})
    bind_request_id(trace.get("request_id"))
    bind_traceparent(trace.get("traceparent"))
    try:
        yield
    finally:
        bind_request_id(None)
        bind_traceparent(None)


def _deliver(
    bus: EventBus,
    subscriber: str,
    envelope: Mapping[str, Any],
    *,
    attempt: int,
    transaction: Transaction | None = None,
    log: bool = True,
    tracing: TracerProvider | None = None,
) -> bool:
    """:func:`deliver_envelope` under the request id of the request that caused the event, in
    a span of that request's trace, logged unless ``log`` is False (a batch logs its
    deliveries once they have committed); whether it was the first delivery."""
    with _under_request_of(envelope), delivery_span(tracing, subscriber, envelope, attempt):
        first = deliver_envelope(bus, subscriber, envelope, attempt=attempt, transaction=transaction)
        if log:
            _log_delivered(subscriber, envelope, first, attempt=attempt)
    return first


def _log_delivered(subscriber: str, envelope: Mapping[str, Any], first: bool, **values: Any) -> None:
    """Log a successful delivery: a repeat the inbox refused always, a first one at DEBUG only,
    and only when DEBUG is on (building and filtering a log line costs as much as the rest of
    a quick delivery)."""
    if not first:
        _log_of_envelope(subscriber, envelope, **values).info("event.already_handled")
    elif logger.is_enabled_for(logging.DEBUG):
        _log_of_envelope(subscriber, envelope, **values).debug("event.delivered")


def _run_after_commit(callbacks: Iterable[Callable[[], None]]) -> None:
    """Run what waited for a batch's commit; a failure is logged, not raised: the batch has
    committed and must not run again (the dispatcher's next poll finds what a wake-up missed)."""
    for callback in callbacks:
        try:
            callback()
        except Exception:
            logger.exception("events.after_commit_failed")


def deliver_envelope(
    bus: EventBus,
    subscriber: str,
    envelope: Mapping[str, Any],
    *,
    attempt: int = 1,
    transaction: Transaction | None = None,
) -> bool:
    """Run one named subscriber for one stored event, handing it its delivery of it (which its
    unit of work records in its context's inbox); False if it already had been. The dispatcher
    runs outbox deliveries through this, a broker consumer its messages."""
    decoded = codec.decode(envelope, bus.event_class(envelope["type"]))
    delivery = Delivery(subscriber, decoded.id, envelope, attempt=attempt, transaction=transaction)
    try:
        bus.deliver(decoded, delivery)
    except AlreadyHandled:
        return False
    return True


def deliver_from_broker(
    bus: EventBus, tracing: TracerProvider | None = None
) -> Callable[[str, Mapping[str, Any], int], bool]:
    """The handler of a broker consumer: each message delivered as the dispatcher would,
    under the request id and in the trace of the request that caused the event; whether it
    was the first delivery (the subscriber's inbox refuses a repeat)."""

    def handle(subscriber: str, envelope: Mapping[str, Any], attempt: int) -> bool:
        return _deliver(bus, subscriber, envelope, attempt=attempt, tracing=tracing)

    return handle


def _describe(error: BaseException) -> str:
    text = "".join(traceback.format_exception(error))
    return text[-MAX_ERROR_LENGTH:]
