"""What a shop process runs beside serving requests: event delivery and housekeeping.

``shop serve`` starts it unless ``EVENTS_DISPATCH_IN_WEB`` is off; ``shop events relay`` runs
it as a process of its own. When contexts are served apart, it also consumes, from the broker,
the events published elsewhere that the subscribers served here take. Several of them may run
at once (processes, hosts): deliveries are claimed with leases, and housekeeping is idempotent.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import structlog

from app.containers import ApplicationContainer, context_container
from app.registry import BY_NAME
from infrastructure.periodic import Periodic

logger = structlog.get_logger(__name__)


class BackgroundWork:
    def __init__(self, container: ApplicationContainer) -> None:
        self._container = container
        settings = container.settings()
        self._retention = timedelta(hours=settings.events_retention_hours)
        self._maintenance = Periodic("maintenance", settings.maintenance_interval_seconds, self.maintain)
        self._consumer = container.broker_consumer()
        publisher = container.broker_publisher()
        # While the broker is away, try it every poll: once it answers, the relay's backlog
        # goes at once (see BrokerPublisher.when_back), even when no delivery is due to try.
        self._broker_watch = (
            Periodic("broker-watch", settings.events_poll_seconds, publisher.check_back) if publisher else None
        )

    def start(self) -> None:
        self._container.dispatcher().start()
        if self._consumer is not None:
            self._consumer.start()
        if self._broker_watch is not None:
            self._broker_watch.start()
        self._maintenance.start()

    def stop(self) -> None:
        self._maintenance.stop()
        if self._broker_watch is not None:
            self._broker_watch.stop()
        if self._consumer is not None:
            self._consumer.stop()
        self._container.dispatcher().stop()

    def maintain(self) -> None:
        """Run the periodic tasks of the contexts served here (releasing expired stock
        reservations), and prune deliveries past their retention; each on its own, so that one
        failing does not keep the others from running."""
        for name in self._container.settings().hosted_contexts():
            for task in BY_NAME[name].periodic:
                try:
                    done = task.run(context_container(self._container, name))
                    if done:
                        logger.info(f"maintenance.{task.name}", count=done)
                        self._container.metrics().periodic_handled.labels(task.name).inc(done)
                except Exception:
                    logger.exception("maintenance.task_failed", context=name, task=task.name)
        cutoff = datetime.now(timezone.utc) - self._retention
        for outbox in self._container.dispatcher().outboxes:
            try:
                pruned = outbox.ledger.prune(cutoff)
                if pruned:
                    logger.info("maintenance.deliveries_pruned", context=outbox.context, count=pruned)
            except Exception:
                logger.exception("maintenance.prune_failed", context=outbox.context)
