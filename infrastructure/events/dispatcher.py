"""Runs pending deliveries off the request thread, in a bounded pool, until each completes.

What this module holds is the scheduling: claims, the queue, the workers, leases, and
back-pressure. How a delivery runs is :mod:`~infrastructure.events.delivery_runner`'s; when a
failed one runs again, :mod:`~infrastructure.events.retry_policy`'s.

One loop claims due deliveries from every outbox (a lease, so another dispatcher in another
process takes over what a crashed one left) into a queue that a fixed pool of worker threads
drains. A worker runs one subscriber on one event; a failure is recorded at once (due again
after an exponential backoff with jitter, or dead after ``max_attempts``), successes are
recorded by the loop, many in one statement. Commits wake the loop, coalesced so that a burst
of them makes one claim; otherwise it polls, which is how it notices other processes' events.

The database work is per batch, not per delivery: a claim takes as many deliveries as the
workers can run in about ``CLAIM_AHEAD_SECONDS``, judged by how long deliveries have been
taking (slow subscribers: a few at a time, leaving the rest to other dispatchers; a backlog of
quick ones: hundreds), and the loop runs again when the queue is half empty, not per delivery.

So are the subscribers' own transactions, for those subscribed ``batched``: a worker takes
several queued deliveries to one such subscriber and runs them in one shared transaction (one
BEGIN, one writer turn on SQLite, one commit; each delivery's inbox row and effect a savepoint
in it). Should any of them fail, the batch is rolled back and its deliveries run again one at a
time, so retries, dead letters and poison events stay per delivery.

A process whose requests record events faster than its deliveries complete them would let the
backlog, and the delay from an event to its effects, grow without bound. With
``hold_writes_after``, each round judges how far behind the deliveries run (the age of the
oldest event whose first delivery waits in the queue) and :meth:`wait_until_caught_up` holds
the process's write requests while that passes the bound: back-pressure that slows the
admission of new work to the pace its deliveries keep, on the same cores.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import structlog

from infrastructure.events.bus import EventBus
from infrastructure.events.delivery_queue import ClaimedDelivery
from infrastructure.events.delivery_runner import MAX_BATCH, DeliveryRunner
from infrastructure.events.outbox import Outbox
from infrastructure.events.retry_policy import RetryPolicy
from infrastructure.observability.metrics import Metrics

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = structlog.get_logger(__name__)

# A claim takes at least this many deliveries per worker, at most MAX_CLAIM in all, and in
# between what the workers run in CLAIM_AHEAD_SECONDS at the time deliveries have been taking.
PREFETCH_PER_WORKER = 8
MAX_CLAIM = 500
CLAIM_AHEAD_SECONDS = 0.1
# After a claim, the commits of the next this many seconds wait and are claimed together.
COALESCE_SECONDS = 0.05
# A worker takes from the queue at once as many deliveries as it runs in TAKE_SECONDS, at most
# MAX_TAKE: quick ones several at a time, whatever takes a millisecond or more one by one.
TAKE_SECONDS = 0.002
MAX_TAKE = 16


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
        hold_writes_after: float = 0.0,
        metrics: Metrics | None = None,
        tracing: TracerProvider | None = None,
    ) -> None:
        """``persistent``: subscribers retried until they succeed, never dead letters — the
        relay, whose failures mean the broker is away, and which must resume by itself.
        ``hold_writes_after``: how many seconds behind its events the deliveries may run before
        :meth:`wait_until_caught_up` holds its callers; 0: never."""
        self._outboxes = list(outboxes)
        self._bus = bus
        self.runner = DeliveryRunner(bus, retry, persistent, metrics, tracing)
        self._workers = workers
        self._lease = lease
        self._poll_interval = poll_interval
        self._hold_writes_after = hold_writes_after
        # Set while the deliveries keep up: what write requests wait for (see _judge_lag).
        self._caught_up = threading.Event()
        self._caught_up.set()
        # Host and process id say whose claim a delivery is under; short enough for claimed_by.
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # Guards everything below that the workers touch too.
        self._lock = threading.Lock()
        self._queue: deque[tuple[Outbox, ClaimedDelivery]] = deque()  # claimed, not started
        self._in_flight = 0  # queued or running
        self._draining = 0  # workers taking deliveries from the queue
        self._claim_limit = workers * PREFETCH_PER_WORKER  # deliveries to hold in flight
        self._take = 1  # deliveries a worker takes from the queue at once
        self._backlog = False  # the last claim took all it asked for: more is waiting
        self._wanted = False  # a worker asked the loop for a round since the last one
        self._finished = 0  # deliveries run since the claims were last sized
        self._busy = 0.0  # seconds the workers spent running them
        self._completed: list[tuple[Outbox, ClaimedDelivery]] = []
        # Everything claimed and not yet settled in the database: queued, running, or done
        # and waiting for its completion to be recorded. Their leases are renewed.
        self._held: dict[uuid.UUID, tuple[Outbox, ClaimedDelivery]] = {}
        # The loop renews leases, and stop() while the workers finish: one at a time (a loop
        # that outlived stop()'s wait for it may still be at it).
        self._renewing = threading.Lock()
        self._renewed_at = 0.0
        self._round_at = 0.0
        self._seconds_each = 0.0  # what a delivery takes a worker, smoothed; 0 before any
        self._pool: ThreadPoolExecutor | None = None
        self._loop: threading.Thread | None = None
        for outbox in self._outboxes:
            outbox.on_commit(self.wake)

    @property
    def workers(self) -> int:
        """How many deliveries run at the same time."""
        return self._workers

    @property
    def outboxes(self) -> tuple[Outbox, ...]:
        return tuple(self._outboxes)

    # -- running in the background ----------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether it delivers in the background (started, not stopped)."""
        return self._loop is not None

    def start(self) -> None:
        if self._loop is not None:
            return
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="event-delivery")
        self._loop = threading.Thread(target=self._run, name="event-dispatcher", daemon=True)
        self._loop.start()
        logger.info("events.dispatcher_started", owner=self.owner, workers=self._workers)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming, let running deliveries finish, hand queued ones back to the outbox.

        ``timeout``: how long to wait for the loop's round to end. Running deliveries are
        waited for however long they take, their leases kept meanwhile (see
        :meth:`_finish_running`): a delivery cut short, or left to lapse, would run again."""
        if self._loop is None or self._pool is None:
            return
        self._stopping.set()
        self._wake.set()
        self._loop.join(timeout)
        if self._loop.is_alive():
            logger.warning("events.dispatcher_loop_still_running", owner=self.owner)
        self._finish_running(self._pool)
        with self._lock:
            unstarted = list(self._queue)
            self._queue.clear()
            self._in_flight -= len(unstarted)
            self._draining = 0  # those that ran have left; cancelled ones never started
        self._record_completed()
        for outbox in self._outboxes:
            outbox.queue.release([claim for owner, claim in unstarted if owner is outbox])
        self._let_go(claim for _, claim in unstarted)
        self._loop, self._pool = None, None
        logger.info("events.dispatcher_stopped", owner=self.owner, handed_back=len(unstarted))

    def _finish_running(self, pool: ThreadPoolExecutor) -> None:
        """Let the workers finish the deliveries they run (they take no more; what they never
        took is cancelled), renewing the leases of all held until they have.

        The loop renewed them, and it has ended: a delivery outlasting its lease would be
        claimed by another dispatcher and run a second time (a mail sent twice, as mail is sent
        before its delivery is recorded), and the queued ones taken before they are handed back.
        """
        drained = threading.Thread(
            target=lambda: pool.shutdown(wait=True, cancel_futures=True), name="event-dispatcher-stopping"
        )
        drained.start()
        while drained.is_alive():
            self._renew_leases(at_once=True)  # the loop's last renewal may be most of a third ago
            drained.join(self._lease.total_seconds() / 3)

    def wait_until_caught_up(self, timeout: float) -> bool:
        """Hold the caller, at most ``timeout`` seconds, while the deliveries run more than
        ``hold_writes_after`` behind their events; whether they caught up meanwhile.

        For the write requests of the process: a request that would record more events waits
        until the work already recorded is done, so under a load the process cannot keep up
        with, orders are taken at the pace their deliveries complete rather than piling up
        events whose effects come ever later. Free while the deliveries keep up (``is_set`` is
        a plain read; ``wait`` takes a lock even then)."""
        return self._caught_up.is_set() or self._caught_up.wait(timeout)

    def wake(self) -> None:
        """Claim soon: a commit recorded events (see :meth:`_wait` for how soon)."""
        self._wake.set()

    def hasten(self, subscriber: str) -> None:
        """Run ``subscriber``'s deliveries that wait for a retry now (the relay's, when the
        broker is back); an outbox that cannot be reached is logged, its deliveries keep their
        retry times. An outbox that hastened any wakes the dispatcher (its commit does)."""
        for outbox in self._outboxes:
            try:
                hastened = outbox.ledger.hasten(subscriber)
            except Exception:
                logger.exception("events.hasten_failed", context=outbox.context, subscriber=subscriber)
                continue
            if hastened:
                logger.info("events.hastened", context=outbox.context, subscriber=subscriber, deliveries=hastened)

    def _run(self) -> None:
        # Wake often enough to renew leases well before they run out.
        idle_wait = min(self._poll_interval, self._lease.total_seconds() / 3)
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                with self._lock:
                    self._wanted = False
                self._round_at = time.monotonic()
                self._renew_leases()
                self._size_claims()
                self._complete_and_claim()
                self._wait(idle_wait)
            self._record_completed()
        finally:
            self._caught_up.set()  # stopped or crashed, no round will judge again: hold nothing on its last

    def _wait(self, idle_wait: float) -> None:
        """Until the workers want more, the poll is due, or the loop is woken otherwise.

        Wake-ups but the workers' asking for more (commits; the workers having finished all
        they had, to be recorded) are served no sooner than ``COALESCE_SECONDS`` after the last
        round: the commits of a burst of orders meanwhile are then taken by one claim, not one
        each, and the write transactions the dispatcher adds to the web requests' stay few.
        """
        self._wake.wait(idle_wait)
        with self._lock:
            if self._wanted:
                return
        delay = self._round_at + min(COALESCE_SECONDS, self._poll_interval) - time.monotonic()
        if delay > 0:
            self._stopping.wait(delay)

    def _renew_leases(self, *, at_once: bool = False) -> None:
        """Extend the lease of everything held: every third of a lease, or ``at_once``; not
        while another thread is renewing them."""
        if not self._renewing.acquire(blocking=False):
            return
        try:
            if not at_once and time.monotonic() - self._renewed_at < self._lease.total_seconds() / 3:
                return
            self._renewed_at = time.monotonic()
            with self._lock:
                held = list(self._held.values())
            for outbox in self._outboxes:
                try:
                    outbox.queue.extend([delivery for owner, delivery in held if owner is outbox], self._lease)
                except Exception:
                    # Should the lease run out, another dispatcher runs it again: the inbox absorbs that.
                    logger.exception("events.lease_not_renewed")
        finally:
            self._renewing.release()

    def _record_completed(self) -> None:
        """Mark what the workers finished as done, one statement per outbox (on stopping; while
        running, each round does it with its claim)."""
        with self._lock:
            completed, self._completed = self._completed, []
        for outbox in self._outboxes:
            batch = [delivery for owner, delivery in completed if owner is outbox]
            try:
                outbox.queue.complete(batch)
            except Exception:
                # Not lost: their leases run out, they run again, the inbox absorbs the repeat.
                logger.exception("events.completion_not_recorded", deliveries=len(batch))
        self._let_go(delivery for _, delivery in completed)

    def _let_go(self, deliveries: Iterable[ClaimedDelivery]) -> None:
        with self._lock:
            for delivery in deliveries:
                self._held.pop(delivery.id, None)

    def _size_claims(self) -> None:
        """Claim what the workers run in ``CLAIM_AHEAD_SECONDS``, by how long deliveries took.

        By their time in the workers, not by how many finished per second: while claims are
        too small, the loop holds up the workers, and the throughput would keep them small.
        """
        with self._lock:
            finished, busy = self._finished, self._busy
            self._finished, self._busy = 0, 0.0
        if not finished:
            return
        latest = busy / finished
        self._seconds_each = (self._seconds_each + latest) / 2 if self._seconds_each else latest
        each = max(self._seconds_each, 1e-6)
        ahead = int(self._workers * CLAIM_AHEAD_SECONDS / each)
        limit = max(self._workers * PREFETCH_PER_WORKER, min(MAX_CLAIM, ahead))
        take = max(1, min(MAX_TAKE, int(TAKE_SECONDS / each)))
        with self._lock:
            self._claim_limit, self._take = limit, take

    def _complete_and_claim(self) -> None:
        """Per outbox, one write transaction: mark what the workers finished done, claim more
        for the queue (on SQLite every write transaction queues for the one writer lock)."""
        assert self._pool is not None
        with self._lock:
            completed, self._completed = self._completed, []
        backlog = False
        for outbox in self._outboxes:
            done = [delivery for owner, delivery in completed if owner is outbox]
            with self._lock:
                free = max(0, self._claim_limit - self._in_flight)
            try:
                claimed = outbox.queue.claim(free, owner=self.owner, lease=self._lease, completing=done)
            except Exception:
                # Completions not recorded are not lost: the leases run out, the deliveries run
                # again, and the inbox absorbs the repeats.
                logger.exception("events.claim_failed", context=outbox.context, completions_not_recorded=len(done))
                claimed = []
            self._let_go(done)
            full = len(claimed) == free
            backlog = backlog or full
            with self._lock:
                # Known before the workers start: the first of them to run the queue half empty
                # asks for the next claim then, rather than at the next poll or commit.
                self._backlog = self._backlog or full
                for delivery in claimed:
                    if delivery.id in self._held:
                        continue  # its lease lapsed (renewal failed) while still in hand here
                    self._held[delivery.id] = (outbox, delivery)
                    self._queue.append((outbox, delivery))
                    self._in_flight += 1
                starting = min(self._workers - self._draining, len(self._queue))
                self._draining += starting
            for _ in range(starting):
                self._pool.submit(self._drain)
        with self._lock:
            self._backlog = backlog
        self._judge_lag()

    def _judge_lag(self) -> None:
        """Hold write requests while the deliveries run more than the bound behind, let them
        go as soon as a round finds them within it again.

        How far behind: since the oldest event whose first delivery is queued here, not yet
        started, occurred. Claims take the oldest events first, so under a backlog that is the
        age of the backlog's head; while the workers keep up the queue is short and young.
        Per outbox the first such delivery in the queue is taken for its oldest; an older one
        queued behind it (an aggregate's event held back until an earlier one was done) makes
        the figure low, never high, so the error is on the side of holding less. Left out:
        retries, whose events are old by design, and events older than a lease, which are not
        the pace of this process's requests but a backlog it did not make (claims taken over
        from a process that died, what an outage left): holding writes would only delay them.
        A judgement that fails lets writes go rather than stopping the loop."""
        if not self._hold_writes_after:
            return
        with self._lock:
            oldest: dict[str, Any] = {}  # per outbox, its first queued first attempt's occurred_at
            for outbox, delivery in self._queue:
                if delivery.attempts == 0 and outbox.context not in oldest:
                    oldest[outbox.context] = delivery.envelope.get("occurred_at")
                    if len(oldest) == len(self._outboxes):
                        break
        try:
            lag = _lag(oldest.values(), within=self._lease)
        except (TypeError, ValueError):
            logger.exception("events.lag_not_judged")
            lag = 0.0
        behind = lag > self._hold_writes_after
        if behind == self._caught_up.is_set():
            logger.debug("events.writes_held" if behind else "events.writes_let_go", lag_seconds=round(lag, 3))
        if behind:
            self._caught_up.clear()
        else:
            self._caught_up.set()

    def _drain(self) -> None:
        """A worker's turn: run queued deliveries until none is left or the dispatcher stops.

        A worker takes the next deliveries only when it is free, so a slow subscriber holds up
        nothing but its own delivery (quick ones are taken a few at a time, see ``_take``, to
        spare the lock and the GIL a handover per delivery). The loop is asked for a round
        when the queue runs half empty while more is waiting (to claim in batches, not per
        delivery), or when all in hand is finished (to record it).
        """
        while True:
            with self._lock:
                if self._stopping.is_set() or not self._queue:
                    self._draining -= 1
                    return
                taken, batched = self._take_locked()
            ran: list[tuple[Outbox, ClaimedDelivery, bool]] = []
            started = time.perf_counter()
            try:
                if batched:  # one transaction: run whole even when stopping
                    outbox = taken[0][0]
                    results = self.runner.run_batch(outbox, [delivery for _, delivery in taken])
                    ran.extend((outbox, delivery, ok) for (_, delivery), ok in zip(taken, results, strict=True))
                else:
                    for outbox, delivery in taken:
                        if self._stopping.is_set():
                            break  # the rest goes back to the queue, for stop() to hand back
                        succeeded = False
                        try:
                            succeeded = self.runner.run_delivery(outbox, delivery)
                        finally:
                            ran.append((outbox, delivery, succeeded))
            except BaseException:  # run_delivery records every Exception; this worker leaves
                with self._lock:
                    self._draining -= 1
                raise
            finally:
                self._settle(taken, ran, time.perf_counter() - started)

    def _take_locked(self) -> tuple[list[tuple[Outbox, ClaimedDelivery]], bool]:
        """What a worker runs next (the lock held, the queue not empty), and whether as a batch:
        up to ``MAX_BATCH`` queued deliveries of the first one's outbox and subscriber when that
        subscriber is batched (the others keep their places), else ``_take`` of the first ones.

        The claim never holds two deliveries of one aggregate to one subscriber, so a batch
        holds no two events whose order matters. The scan stops after ``MAX_BATCH`` items per
        worker, so that the lock is never held to pop and push back a whole long queue.
        """
        outbox, first = self._queue[0]
        if not self._bus.batched(first.subscriber):
            count = max(1, min(self._take, len(self._queue) // self._workers))
            return [self._queue.popleft() for _ in range(count)], False
        batch: list[tuple[Outbox, ClaimedDelivery]] = []
        others: list[tuple[Outbox, ClaimedDelivery]] = []
        scan = MAX_BATCH * self._workers
        while self._queue and len(batch) < MAX_BATCH and len(batch) + len(others) < scan:
            item = self._queue.popleft()
            (batch if item[0] is outbox and item[1].subscriber == first.subscriber else others).append(item)
        self._queue.extendleft(reversed(others))
        return batch, True

    def _settle(
        self, taken: list[tuple[Outbox, ClaimedDelivery]], ran: list[tuple[Outbox, ClaimedDelivery, bool]], busy: float
    ) -> None:
        with self._lock:
            self._queue.extendleft(reversed(taken[len(ran) :]))
            for outbox, delivery, succeeded in ran:
                if succeeded:
                    self._completed.append((outbox, delivery))
                else:
                    self._held.pop(delivery.id, None)  # its failure is recorded
            self._in_flight -= len(ran)
            self._finished += len(ran)
            self._busy += busy
            # More is waiting: the next round at once, to claim while the workers still have
            # work. Else, when all in hand is finished, a round to record it, as soon as a
            # commit's would be.
            hungry = self._backlog and not self._wanted and self._in_flight <= self._claim_limit // 2
            self._wanted = self._wanted or hungry
            idle = not self._backlog and self._in_flight == 0
        if hungry or idle:
            self._wake.set()

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
                for delivery in outbox.queue.claim(100, owner=self.owner, lease=self._lease)
            ]
            if not batch:
                return ran
            for outbox in self._outboxes:
                outbox.queue.complete(
                    [
                        delivery
                        for subscriber, deliveries in _by_subscriber(d for owner, d in batch if owner is outbox)
                        for delivery, succeeded in zip(
                            deliveries, self.runner.run_each_or_batch(outbox, subscriber, deliveries), strict=True
                        )
                        if succeeded
                    ]
                )
            ran += len(batch)
        return ran


def _lag(occurred: Iterable[Any], *, within: timedelta) -> float:
    """Seconds since the oldest of these ISO 8601 times, leaving out those older than ``within``;
    0 when none is left. Raises ``TypeError``/``ValueError`` for a value that is not an aware time."""
    now = datetime.now(timezone.utc)
    ages = [(now - datetime.fromisoformat(text)).total_seconds() for text in occurred]
    return max((age for age in ages if age < within.total_seconds()), default=0.0)


def _by_subscriber(deliveries: Iterable[ClaimedDelivery]) -> list[tuple[str, list[ClaimedDelivery]]]:
    """Deliveries grouped by subscriber, in their order otherwise."""
    groups: dict[str, list[ClaimedDelivery]] = {}
    for delivery in deliveries:
        groups.setdefault(delivery.subscriber, []).append(delivery)
    return list(groups.items())
