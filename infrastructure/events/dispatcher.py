"""Runs pending deliveries off the request thread, in a bounded pool, until each completes.

One loop claims due deliveries from every outbox (a lease, so another dispatcher in another
process takes over what a crashed one left) and hands them to a fixed pool of worker
threads. A worker runs one subscriber on one event and records the outcome: complete, due
again after an exponential backoff with jitter, or dead after ``max_attempts``. Commits wake
the loop at once; otherwise it polls, which is how it notices other processes' events.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import structlog

from infrastructure.backoff import equal_jitter
from infrastructure.events import codec
from infrastructure.events.bus import EventBus
from infrastructure.events.inbox import AlreadyHandled, Delivery, delivering
from infrastructure.events.outbox import ClaimedDelivery, Outbox
from infrastructure.request_context import bind_request_id

logger = structlog.get_logger(__name__)

MAX_ERROR_LENGTH = 4000
PREFETCH_PER_WORKER = 8


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int | None = 8  # None: never a dead letter
    base_delay: float = 1.0
    max_delay: float = 300.0

    def next_attempt(self, attempts: int, now: datetime) -> datetime | None:
        """When to try again after ``attempts`` failures; None once they are used up.

        The delay doubles per failure up to ``max_delay`` and is drawn from its upper half
        ("equal jitter"), so retries of a burst of failures spread out instead of colliding.
        """
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return None
        return now + timedelta(seconds=equal_jitter(attempts, self.base_delay, self.max_delay))


class Dispatcher:
    def __init__(
        self,
        outboxes: Sequence[Outbox],
        bus: EventBus,
        *,
        workers: int = 4,
        retry: RetryPolicy = RetryPolicy(),
        lease: timedelta = timedelta(seconds=60),
        poll_interval: float = 1.0,
        persistent: Collection[str] = (),
    ) -> None:
        """``persistent``: subscribers retried until they succeed, never dead letters — the
        relay, whose failures mean the broker is away, and which must resume by itself."""
        self._outboxes = list(outboxes)
        self._bus = bus
        self._workers = workers
        self._retry = retry
        self._persistent = frozenset(persistent)
        self._retry_persistent = replace(retry, max_attempts=None)
        self._lease = lease
        self._poll_interval = poll_interval
        # Host and process id say whose claim a delivery is under; short enough for claimed_by.
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._completed: list[tuple[Outbox, ClaimedDelivery]] = []
        # Everything claimed and not yet settled in the database: queued, running, or done
        # and waiting for its completion to be recorded. Their leases are renewed.
        self._held: dict[uuid.UUID, tuple[Outbox, ClaimedDelivery]] = {}
        self._renewed_at = 0.0
        self._queued: dict[uuid.UUID, tuple[Outbox, ClaimedDelivery]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._loop: threading.Thread | None = None
        for outbox in self._outboxes:
            outbox.on_commit(self.wake)

    @property
    def outboxes(self) -> tuple[Outbox, ...]:
        return tuple(self._outboxes)

    # -- running in the background ----------------------------------------------------------

    def start(self) -> None:
        if self._loop is not None:
            return
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="event-delivery")
        self._loop = threading.Thread(target=self._run, name="event-dispatcher", daemon=True)
        self._loop.start()
        logger.info("events.dispatcher_started", owner=self.owner, workers=self._workers)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming, let running deliveries finish, hand queued ones back to the outbox."""
        if self._loop is None or self._pool is None:
            return
        self._stopping.set()
        self._wake.set()
        self._loop.join(timeout)
        if self._loop.is_alive():
            logger.warning("events.dispatcher_loop_still_running", owner=self.owner)
        with self._lock:
            unstarted = list(self._queued.values())
            self._queued.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._record_completed()
        for outbox in self._outboxes:
            outbox.release([claim for owner, claim in unstarted if owner is outbox])
        self._let_go(claim for _, claim in unstarted)
        self._loop, self._pool = None, None
        logger.info("events.dispatcher_stopped", owner=self.owner, handed_back=len(unstarted))

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        # Wake often enough to renew leases well before they run out.
        idle_wait = min(self._poll_interval, self._lease.total_seconds() / 3)
        while not self._stopping.is_set():
            self._wake.clear()
            self._record_completed()
            self._renew_leases()
            try:
                claimed = self._claim_into_pool()
            except Exception:
                logger.exception("events.claim_failed")
                claimed = 0
            if not claimed:
                self._wake.wait(idle_wait)
        self._record_completed()

    def _renew_leases(self) -> None:
        if time.monotonic() - self._renewed_at < self._lease.total_seconds() / 3:
            return
        self._renewed_at = time.monotonic()
        with self._lock:
            held = list(self._held.values())
        for outbox in self._outboxes:
            try:
                outbox.extend([delivery for owner, delivery in held if owner is outbox], self._lease)
            except Exception:
                # Should the lease run out, another dispatcher runs it again: the inbox absorbs that.
                logger.exception("events.lease_not_renewed")

    def _record_completed(self) -> None:
        """Mark what the workers finished as done, one transaction per outbox: on SQLite
        every write transaction queues for the one writer lock, so fewer is faster."""
        with self._lock:
            completed, self._completed = self._completed, []
        for outbox in self._outboxes:
            batch = [delivery for owner, delivery in completed if owner is outbox]
            try:
                outbox.complete(batch)
            except Exception:
                # Not lost: their leases run out, they run again, the inbox absorbs the repeat.
                logger.exception("events.completion_not_recorded", deliveries=len(batch))
        self._let_go(delivery for _, delivery in completed)

    def _let_go(self, deliveries: Iterable[ClaimedDelivery]) -> None:
        with self._lock:
            for delivery in deliveries:
                self._held.pop(delivery.id, None)

    def _claim_into_pool(self) -> int:
        assert self._pool is not None
        claimed = 0
        for outbox in self._outboxes:
            free = self._free_slots()
            if not free:
                break
            for delivery in outbox.claim(free, owner=self.owner, lease=self._lease):
                with self._lock:
                    if delivery.id in self._held:
                        continue  # its lease lapsed (renewal failed) while still in hand here
                    self._in_flight += 1
                    self._queued[delivery.id] = (outbox, delivery)
                    self._held[delivery.id] = (outbox, delivery)
                future = self._pool.submit(self._run_queued, outbox, delivery)
                future.add_done_callback(self._free_slot)
                claimed += 1
        return claimed

    def _free_slots(self) -> int:
        """Deliveries to claim now: enough to keep every worker busy until the next claim,
        few enough that none waits long in the queue (its lease is renewed meanwhile)."""
        with self._lock:
            return self._workers * PREFETCH_PER_WORKER - self._in_flight

    def _free_slot(self, _future: Future[None]) -> None:
        with self._lock:
            self._in_flight -= 1
            low = self._in_flight <= self._workers * PREFETCH_PER_WORKER // 2
        if low:
            self._wake.set()  # claim more now, not at the next poll, but in batches

    def _run_queued(self, outbox: Outbox, delivery: ClaimedDelivery) -> None:
        with self._lock:
            if self._stopping.is_set() or self._queued.pop(delivery.id, None) is None:
                return  # stopping: stop() hands it back
        if self.run_delivery(outbox, delivery):
            with self._lock:
                self._completed.append((outbox, delivery))
        else:
            self._let_go([delivery])  # its failure is recorded

    # -- running in the caller's thread -----------------------------------------------------

    def run_until_idle(self, *, max_rounds: int = 1000) -> int:
        """Deliver everything due now, in this thread; returns how many deliveries ran.

        For commands and tests that want the effects before they go on. Retries scheduled
        for later are not waited for.
        """
        ran = 0
        for _ in range(max_rounds):
            batch = [
                (outbox, delivery)
                for outbox in self._outboxes
                for delivery in outbox.claim(100, owner=self.owner, lease=self._lease)
            ]
            if not batch:
                return ran
            for outbox in self._outboxes:
                outbox.complete(
                    [delivery for owner, delivery in batch if owner is outbox and self.run_delivery(owner, delivery)]
                )
            ran += len(batch)
        return ran

    def run_delivery(self, outbox: Outbox, delivery: ClaimedDelivery) -> bool:
        """Run one delivery; a failure is recorded here, a success is the caller's to record."""
        envelope = delivery.envelope
        bind_request_id(envelope.get("trace", {}).get("request_id"))
        log = logger.bind(
            event_id=envelope["id"], event_type=envelope["type"], subscriber=delivery.subscriber,
            attempt=delivery.attempts + 1,
        )
        try:
            self._call_subscriber(delivery, log)
        except Exception as error:  # noqa: BLE001 - any failure of a subscriber is recorded for a retry
            policy = self._retry_persistent if delivery.subscriber in self._persistent else self._retry
            retry_at = policy.next_attempt(delivery.attempts + 1, datetime.now(timezone.utc))
            log.warning(
                "event.delivery_failed" if retry_at else "event.dead_lettered",
                error=repr(error), retry_at=retry_at.isoformat() if retry_at else None,
            )
            try:
                outbox.fail(delivery, _describe(error), retry_at=retry_at)
            except Exception:
                # Not lost: its lease runs out and it is tried again.
                log.exception("event.failure_not_recorded")
            return False
        finally:
            bind_request_id(None)
        return True

    def _call_subscriber(self, delivery: ClaimedDelivery, log: structlog.typing.FilteringBoundLogger) -> None:
        if deliver_envelope(self._bus, delivery.subscriber, delivery.envelope):
            log.debug("event.delivered")
        else:
            log.info("event.already_handled")


def deliver_envelope(bus: EventBus, subscriber: str, envelope: Mapping[str, Any]) -> bool:
    """Run one named subscriber for one stored event, as that subscriber's delivery of it (its
    unit of work records the delivery in its context's inbox); False if it already had been.
    The dispatcher runs outbox deliveries through this, a broker consumer its messages."""
    event = codec.decode(envelope, bus.event_class(envelope["type"]))
    try:
        with delivering(Delivery(subscriber, event.id, envelope)):
            bus.deliver(event, subscriber)
    except AlreadyHandled:
        return False
    return True


def deliver_from_broker(bus: EventBus) -> Callable[[str, Mapping[str, Any]], None]:
    """The handler of a broker consumer: each message delivered as the dispatcher would,
    under the request id of the request that caused the event."""

    def handle(subscriber: str, envelope: Mapping[str, Any]) -> None:
        bind_request_id(envelope.get("trace", {}).get("request_id"))
        try:
            deliver_envelope(bus, subscriber, envelope)
        finally:
            bind_request_id(None)

    return handle


def _describe(error: BaseException) -> str:
    text = "".join(traceback.format_exception(error))
    return text[-MAX_ERROR_LENGTH:]
