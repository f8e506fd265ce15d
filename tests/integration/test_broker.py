"""Events through RabbitMQ: the broker publisher and consumer against a real server.

The server is the one ``SHOP_TEST_AMQP_URL`` names; without it these tests skip, saying so.
Every test declares a layout of its own (a fresh exchange name and queue prefix) and
deletes it afterwards, so runs never see each other's messages. The outage test stops and
restarts the broker's application with ``rabbitmqctl`` and always leaves it running.
"""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import pytest
import structlog
from kombu import Connection, Producer, Queue
from prometheus_client import CollectorRegistry
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, func, insert, select
from structlog.testing import capture_logs

from app.background import BackgroundWork
from app.factory import container_of
from app.placement import RELAY
from contexts.user.adapters.orm import OUTBOX as USER_OUTBOX
from contexts.user.application.handlers import RegisterUser
from infrastructure.backoff import equal_jitter
from infrastructure.db.database import Database
from infrastructure.events.broker import consumer as consumer_module
from infrastructure.events.broker import publisher as publisher_module
from infrastructure.events.broker.consumer import BrokerConsumer, Handler
from infrastructure.events.broker.dead_letters import BrokerDeadLetter, Busy, dead_letters, retry_dead_letters
from infrastructure.events.broker.layout import QueueLayout
from infrastructure.events.broker.publisher import BrokerPublisher, PublishFailed
from infrastructure.events.bus import EventBus
from infrastructure.events.delivery import Delivery
from infrastructure.events.delivery_runner import deliver_envelope
from infrastructure.events.envelope import Envelope
from infrastructure.events.inbox import Inbox
from infrastructure.events.tables import inbox_table
from infrastructure.observability.metrics import Metrics
from tests.conftest import MakeApp, amqp_url_or_skip

DEADLINE_SECONDS = 30.0
RETRY_DELAY = 0.1  # the retry queue's hold: short, so that attempts follow each other quickly

# Some of these tests stop the broker's application: every test that needs the broker runs on one
# pytest-xdist worker (tests/README.md, "Running in parallel").
pytestmark = pytest.mark.xdist_group("rabbitmq")


@dataclass(frozen=True)
class ThingHappened:
    TYPE: ClassVar[str] = "proof.ThingHappened"
    VERSION: ClassVar[int] = 1
    thing_id: str


@dataclass(frozen=True)
class ThingUndone:
    TYPE: ClassVar[str] = "proof.ThingUndone"
    VERSION: ClassVar[int] = 1
    thing_id: str


HAPPENED, UNDONE = ThingHappened.TYPE, ThingUndone.TYPE


def envelope_of(event: Any) -> dict[str, Any]:
    """An event as the outbox stores it, with a request id to trace."""
    return Envelope(event=event, trace={"request_id": uuid.uuid4().hex}).to_dict()


def eventually(condition: Callable[[], bool], what: str, timeout: float = DEADLINE_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.02)


# -- the broker, and what each test puts on it ----------------------------------------------


class Broker:
    """Makes the test's layouts, publishers and consumers, looks into queues, and removes it
    all afterwards. Each look opens its own connection: the broker may have restarted since."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self._layouts: list[QueueLayout] = []
        self._extra_queues: list[str] = []
        self._closers: list[Callable[[], None]] = []

    def layout(self, subscriptions: dict[str, set[str]], **options: Any) -> QueueLayout:
        layout = QueueLayout(
            subscriptions,
            exchange=f"{self.prefix}.events",
            queue_prefix=self.prefix,
            retry_delay=options.pop("retry_delay", RETRY_DELAY),
        )
        self._layouts.append(layout)
        return layout

    def publisher(self, layout: QueueLayout, **options: Any) -> BrokerPublisher:
        publisher = BrokerPublisher(self.url, layout, connect_timeout=2.0, confirm_timeout=5.0, **options)
        self._closers.append(publisher.close)
        return publisher

    def consumer(self, layout: QueueLayout, handler: Handler, **options: Any) -> BrokerConsumer:
        """A started consumer that reconnects fast; stopped at the end of the test."""
        options = {"max_attempts": 3, "reconnect_delay": 0.1, "reconnect_max_delay": 1.0, **options}
        consumer = BrokerConsumer(self.url, layout, handler, connect_timeout=2.0, poll_interval=0.2, **options)
        self._closers.append(consumer.stop)
        consumer.start()
        eventually(lambda: consumer.consuming, "the consumer consumes")
        return consumer

    def declare_extra_queue(self, name: str, routing_key: str, arguments: dict[str, Any]) -> None:
        """A queue of the test's own on the layout's exchange, beside the subscribers'."""
        self._extra_queues.append(name)
        with Connection(self.url) as connection:
            channel = connection.channel()
            channel.queue_declare(queue=name, durable=True, arguments=arguments)
            channel.queue_bind(queue=name, exchange=f"{self.prefix}.events", routing_key=routing_key)

    def delete_exchange(self, name: str) -> None:
        with Connection(self.url) as connection:
            connection.channel().exchange_delete(name)

    def message_count(self, queue_name: str) -> int:
        """Messages ready in a queue (not those delivered and unacknowledged)."""
        with Connection(self.url) as connection:
            _, count, _ = connection.channel().queue_declare(queue=queue_name, passive=True)
            return int(count)

    def take(self, queue_name: str) -> Any:
        """The next message of a queue (a kombu ``Message``), acknowledged, or None."""
        with Connection(self.url) as connection:
            return Queue(queue_name)(connection.channel()).get(no_ack=True)

    def cleanup(self) -> None:
        for close in reversed(self._closers):
            close()
        names = [name for layout in self._layouts for name in layout.queue_names()] + self._extra_queues
        with Connection(self.url) as connection:
            channel = connection.channel()
            for name in names:
                channel.queue_delete(name)
            channel.exchange_delete(f"{self.prefix}.events")


@pytest.fixture
def broker() -> Iterator[Broker]:
    broker = Broker(amqp_url_or_skip())
    try:
        yield broker
    finally:
        broker.cleanup()


# -- handlers -------------------------------------------------------------------------------


class Recorder:
    """A handler that remembers every call (subscriber, envelope, the attempt the consumer
    named), failing a given number of times per event first. It counts the calls itself, so
    that the consumer's attempts are checked against them, not taken from them."""

    def __init__(self, failures_per_event: int = 0) -> None:
        self._failures_per_event = failures_per_event
        self._lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, Any], int]] = []
        self.succeeded: list[tuple[str, dict[str, Any], int]] = []

    def __call__(self, subscriber: str, envelope: dict[str, Any], attempt: int) -> None:
        with self._lock:
            self.calls.append((subscriber, envelope, attempt))
            tried = sum(1 for name, seen, _ in self.calls if name == subscriber and seen["id"] == envelope["id"])
            if tried <= self._failures_per_event:
                raise RuntimeError(f"attempt {tried} of {envelope['id']} fails")
            self.succeeded.append((subscriber, envelope, attempt))

    def ids(self, subscriber: str, *, succeeded: bool = True) -> list[str]:
        with self._lock:
            return [
                envelope["id"]
                for name, envelope, _ in (self.succeeded if succeeded else self.calls)
                if name == subscriber
            ]

    def attempts(self, subscriber: str, *, succeeded: bool = False) -> list[int]:
        """The attempts the consumer named in its calls to ``subscriber``, every call's unless
        ``succeeded``."""
        with self._lock:
            return [attempt for name, _, attempt in (self.succeeded if succeeded else self.calls) if name == subscriber]


class InboxedSubscribers:
    """A consuming context in miniature, on SQLite: its subscribers add an effect row and their
    unit of work records the inbox row in the same transaction, and :meth:`handle` runs them as
    ``DeliveryRunner.run_delivery`` does (``deliver_envelope``: decode, the delivery, the bus; a
    repeat is no failure). It is the handler the integrator hands the consumer."""

    def __init__(self, folder: Path) -> None:
        metadata = MetaData()
        self.inbox = Inbox(inbox_table(metadata, "proof"))
        self.effects = Table(
            "proof_effects",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("subscriber", String(100), nullable=False),
            Column("event_id", Uuid, nullable=False),
        )
        self.database = Database("proof", f"sqlite:///{folder / 'proof.db'}")
        metadata.create_all(self.database.engine)
        self.bus = EventBus()
        self._lock = threading.Lock()
        self.runs = 0  # completed, once or as a repeat
        self.repeats = 0

    def subscribe(self, name: str, *event_types: type[Any]) -> None:
        for event_type in event_types:
            self.bus.subscribe(event_type, partial(self._take_effect, name), name=name)

    def _take_effect(self, subscriber: str, _event: Any, delivery: Delivery) -> None:
        with self.database.session(write=True) as session:
            session.execute(insert(self.effects).values(subscriber=subscriber, event_id=delivery.event_id))
            self.inbox.record(session, delivery)
            session.commit()

    def handle(self, subscriber: str, envelope: dict[str, Any], attempt: int) -> None:
        repeat = not deliver_envelope(self.bus, subscriber, envelope, attempt=attempt)
        with self._lock:
            self.runs += 1
            self.repeats += repeat

    def effects_per_event(self) -> Counter[tuple[str, str]]:
        with self.database.session(write=False) as session:
            rows = session.execute(select(self.effects.c.subscriber, self.effects.c.event_id)).all()
        return Counter((subscriber, str(event_id)) for subscriber, event_id in rows)

    def inbox_rows(self) -> int:
        with self.database.session(write=False) as session:
            return int(session.execute(select(func.count()).select_from(self.inbox.table)).scalar_one())


# -- routing and the message itself --------------------------------------------------------


def test_each_subscriber_queue_gets_the_types_it_takes_and_only_those(broker: Broker) -> None:
    layout = broker.layout({"proof.happenings": {HAPPENED}, "proof.everything": {HAPPENED, UNDONE}})
    publisher = broker.publisher(layout)
    recorder = Recorder()
    broker.consumer(layout, recorder)

    happened, undone, last = (
        envelope_of(ThingHappened("a")),
        envelope_of(ThingUndone("a")),
        envelope_of(ThingHappened("b")),
    )
    for envelope in (happened, undone, last):
        publisher.publish(envelope)

    # Queues are FIFO: once "proof.happenings" has the last event, anything else routed to it
    # before would have arrived too.
    eventually(lambda: len(recorder.ids("proof.happenings")) == 2, "proof.happenings gets its events")
    eventually(lambda: len(recorder.ids("proof.everything")) == 3, "proof.everything gets its events")
    assert recorder.ids("proof.happenings") == [happened["id"], last["id"]]
    assert recorder.ids("proof.everything") == [happened["id"], undone["id"], last["id"]]
    assert [envelope for _, envelope, _ in recorder.calls if envelope["id"] == undone["id"]] == [undone]


def test_a_message_is_persistent_and_carries_the_event_id_type_and_trace(broker: Broker) -> None:
    # No consumer runs: the publisher declares the whole layout, so the event waits in the
    # queue of a service that has not started yet.
    layout = broker.layout({"proof.later": {HAPPENED}})
    envelope = envelope_of(ThingHappened("a"))

    broker.publisher(layout).publish(envelope)

    message = broker.take(layout.queue("proof.later"))
    assert message is not None
    assert message.properties["delivery_mode"] == 2
    assert message.properties["message_id"] == envelope["id"]
    assert message.properties["type"] == HAPPENED
    assert message.properties["correlation_id"] == envelope["trace"]["request_id"]
    assert message.headers["request_id"] == envelope["trace"]["request_id"]
    assert message.delivery_info["routing_key"] == HAPPENED
    assert message.content_type == "application/json"
    assert json.loads(message.body) == envelope


def test_an_event_no_queue_takes_is_not_confirmed(broker: Broker) -> None:
    publisher = broker.publisher(broker.layout({"proof.happenings": {HAPPENED}}))

    with pytest.raises(PublishFailed, match="NO_ROUTE"):
        publisher.publish(envelope_of(ThingUndone("a")))


def test_a_message_the_broker_refuses_is_not_confirmed_and_the_next_one_goes_through(broker: Broker) -> None:
    layout = broker.layout({"proof.happenings": {HAPPENED}})
    publisher = broker.publisher(layout)
    publisher.publish(envelope_of(ThingHappened("first")))  # connected, layout declared
    # A queue that takes no message refuses it: the broker answers the publish with a nack.
    broker.declare_extra_queue(f"{broker.prefix}.full", UNDONE, {"x-max-length": 0, "x-overflow": "reject-publish"})

    with pytest.raises(PublishFailed, match="MessageNacked"):
        publisher.publish(envelope_of(ThingUndone("refused")))
    publisher.publish(envelope_of(ThingHappened("after")))

    assert broker.message_count(layout.queue("proof.happenings")) == 2


def test_messages_the_broker_refuses_do_not_make_it_away_nor_back(broker: Broker) -> None:
    """The relay's deliveries are hastened when the broker is back: a refusal is no outage, so
    neither the next check nor the next confirmed publish may announce a return (which would
    make every relay retry due at each check)."""
    layout = broker.layout({"proof.happenings": {HAPPENED}})
    publisher = broker.publisher(layout)
    backs: list[None] = []
    publisher.when_back(lambda: backs.append(None))
    publisher.publish(envelope_of(ThingHappened("first")))

    with pytest.raises(PublishFailed, match="NO_ROUTE") as unroutable:
        publisher.publish(envelope_of(ThingUndone("unroutable")))
    broker.declare_extra_queue(f"{broker.prefix}.full", UNDONE, {"x-max-length": 0, "x-overflow": "reject-publish"})
    with pytest.raises(PublishFailed, match="MessageNacked") as nacked:
        publisher.publish(envelope_of(ThingUndone("refused")))
    publisher.check_back()
    publisher.publish(envelope_of(ThingHappened("after")))

    assert (unroutable.value.unreachable, nacked.value.unreachable) == (False, False)
    assert backs == []


def test_a_broker_that_cannot_be_reached_is_back_when_a_check_connects_again(broker: Broker) -> None:
    line = BrokerLine(broker.url)
    layout = broker.layout({"proof.happenings": {HAPPENED}})
    backs: list[None] = []
    publisher = BrokerPublisher(line.url, layout, connect_timeout=2.0, confirm_timeout=5.0)
    publisher.when_back(lambda: backs.append(None))
    try:
        publisher.publish(envelope_of(ThingHappened("before")))
        line.cut()
        with pytest.raises(PublishFailed) as failed:
            publisher.publish(envelope_of(ThingHappened("during")))
        publisher.check_back()
        away = list(backs)
        line.mend()
        publisher.check_back()
    finally:
        publisher.close()
        line.close()

    assert failed.value.unreachable
    assert (away, backs) == ([], [None])


def test_a_process_learns_a_transports_connection_errors_once_for_all_its_links(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kombu tells a transport's errors only through a Connection object: one per URL, not
    one per link, publisher or failure; every other Connection built is a connection tried."""
    # Nothing listens there: every publish fails at once. A vhost of its own: a URL no test used.
    url = f"amqp://guest:guest@127.0.0.1:1/{uuid.uuid4().hex}"
    built: list[str] = []
    real = publisher_module.Connection

    def counted(url: str, *args: Any, **kwargs: Any) -> Any:
        built.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(publisher_module, "Connection", counted)
    publishers = [
        BrokerPublisher(url, QueueLayout({"proof.known": {HAPPENED}}), connections=8, connect_timeout=1.0)
        for _ in range(2)
    ]
    failures = []
    for publisher in publishers * 2:
        with pytest.raises(PublishFailed) as failed:
            publisher.publish(envelope_of(ThingHappened("lost")))
        failures.append(failed.value.unreachable)
        publisher.close()

    assert failures == [True] * 4
    assert built == [url] * (4 + 1)  # four connections tried, and the errors learnt once


def test_a_publisher_whose_exchange_vanished_declares_it_again(broker: Broker) -> None:
    layout = broker.layout({"proof.happenings": {HAPPENED}})
    publisher = broker.publisher(layout)
    publisher.publish(envelope_of(ThingHappened("before")))
    broker.delete_exchange(layout.exchange)  # and with it every binding

    publisher.publish(envelope_of(ThingHappened("after")))

    assert broker.message_count(layout.queue("proof.happenings")) == 2


def test_threads_publishing_at_once_share_the_connections_and_every_event_arrives(broker: Broker) -> None:
    layout = broker.layout({"proof.happenings": {HAPPENED}})
    publisher = broker.publisher(layout, connections=3)
    batches = [[envelope_of(ThingHappened(f"{thread}-{number}")) for number in range(25)] for thread in range(8)]

    def publish_all(batch: list[dict[str, Any]]) -> None:
        for envelope in batch:
            publisher.publish(envelope)

    threads = [threading.Thread(target=publish_all, args=(batch,), daemon=True) for batch in batches]
    for thread in threads:
        thread.start()
    eventually(lambda: not any(thread.is_alive() for thread in threads), "every thread has published")

    assert broker.message_count(layout.queue("proof.happenings")) == 200


def test_declaring_the_layout_again_changes_nothing(broker: Broker) -> None:
    layout = broker.layout({"proof.happenings": {HAPPENED}, "proof.everything": {HAPPENED, UNDONE}})
    broker.publisher(layout).publish(envelope_of(ThingHappened("kept")))

    with Connection(broker.url) as connection:
        layout.declare(connection.channel())
        layout.declare(connection.channel())
    broker.publisher(layout).publish(envelope_of(ThingUndone("routed")))

    assert broker.message_count(layout.queue("proof.happenings")) == 1
    assert broker.message_count(layout.queue("proof.everything")) == 2


# -- failures, retries and dead letters ----------------------------------------------------


def test_a_handler_that_keeps_failing_sends_the_event_to_the_dead_letter_queue(broker: Broker) -> None:
    layout = broker.layout({"proof.fragile": {HAPPENED}})
    recorder = Recorder(failures_per_event=1000)
    broker.consumer(layout, recorder, max_attempts=3)
    envelope = envelope_of(ThingHappened("poison"))

    broker.publisher(layout).publish(envelope)

    dead_queue = layout.dead_queue("proof.fragile")
    eventually(lambda: broker.message_count(dead_queue) == 1, "the event is dead-lettered")
    assert recorder.attempts("proof.fragile") == [1, 2, 3]
    message = broker.take(dead_queue)
    assert json.loads(message.body) == envelope
    assert message.properties["message_id"] == envelope["id"]
    assert message.properties["delivery_mode"] == 2
    assert message.headers["x-shop-subscriber"] == "proof.fragile"
    assert message.headers["x-shop-attempts"] == 3
    assert "attempt 3" in message.headers["x-shop-error"]
    assert broker.message_count(layout.queue("proof.fragile")) == 0
    assert broker.message_count(layout.retry_queue("proof.fragile")) == 0


def test_the_broker_and_its_subscribers_deliveries_are_counted_for_the_operators(broker: Broker) -> None:
    """What /metrics shows of a relayed event whose subscriber fails twice, then dies; and of one
    that goes through at once."""
    layout = broker.layout({"proof.fragile": {HAPPENED}, "proof.sturdy": {HAPPENED}})
    metrics = Metrics(CollectorRegistry())
    fragile = Recorder(failures_per_event=1000)
    broker.consumer(layout, fragile, subscribers=["proof.fragile"], max_attempts=3, metrics=metrics)
    broker.consumer(layout, Recorder(), subscribers=["proof.sturdy"], metrics=metrics)

    broker.publisher(layout, metrics=metrics).publish(envelope_of(ThingHappened("poison")))

    eventually(lambda: broker.message_count(layout.dead_queue("proof.fragile")) == 1, "the event is dead-lettered")
    assert metrics.registry is not None
    sample = metrics.registry.get_sample_value
    fragile_queue, sturdy_queue = layout.queue("proof.fragile"), layout.queue("proof.sturdy")
    assert sample("shop_broker_published_total", {"event_type": HAPPENED}) == 1
    assert sample("shop_broker_consumed_total", {"queue": fragile_queue, "outcome": "retried"}) == 2
    assert sample("shop_broker_consumed_total", {"queue": fragile_queue, "outcome": "dead_lettered"}) == 1
    assert sample("shop_broker_redelivered_total", {"queue": fragile_queue}) == 2, "attempts 2 and 3"
    assert sample("shop_event_deliveries_total", {"subscriber": "proof.fragile", "outcome": "failed"}) == 2
    assert sample("shop_event_deliveries_total", {"subscriber": "proof.fragile", "outcome": "dead"}) == 1
    eventually(
        lambda: sample("shop_broker_consumed_total", {"queue": sturdy_queue, "outcome": "acked"}) == 1,
        "the sturdy subscriber's message is acked",
    )
    assert sample("shop_event_deliveries_total", {"subscriber": "proof.sturdy", "outcome": "done"}) == 1
    assert sample("shop_broker_redelivered_total", {"queue": sturdy_queue}) is None


def test_a_handler_waiting_for_a_dependency_is_retried_past_the_attempts_and_never_dead_lettered(
    broker: Broker,
) -> None:
    """Its database is down for longer than the attempts last: the message waits for it."""
    layout = broker.layout({"proof.patient": {HAPPENED}})
    recorder = Recorder(failures_per_event=5)
    broker.consumer(layout, recorder, max_attempts=3, transient=lambda error: isinstance(error, RuntimeError))
    envelope = envelope_of(ThingHappened("patient"))

    broker.publisher(layout).publish(envelope)

    eventually(lambda: recorder.ids("proof.patient") == [envelope["id"]], "the event is handled in the end")
    assert recorder.attempts("proof.patient") == [1, 2, 3, 4, 5, 6], "counted on past the attempts"
    assert broker.message_count(layout.dead_queue("proof.patient")) == 0


def test_a_handler_failing_once_then_succeeding_processes_the_event_once(broker: Broker) -> None:
    layout = broker.layout({"proof.flaky": {HAPPENED}})
    recorder = Recorder(failures_per_event=1)
    consumer = broker.consumer(layout, recorder, max_attempts=3)
    envelope = envelope_of(ThingHappened("flaky"))

    broker.publisher(layout).publish(envelope)

    eventually(lambda: recorder.ids("proof.flaky") == [envelope["id"]], "the retry succeeds")
    consumer.stop()  # acks are settled: anything unacknowledged would now be back in a queue
    assert recorder.ids("proof.flaky", succeeded=False) == [envelope["id"], envelope["id"]]
    assert recorder.attempts("proof.flaky") == [1, 2]
    assert recorder.succeeded == [("proof.flaky", envelope, 2)]
    for queue_name in (layout.queue("proof.flaky"), layout.retry_queue("proof.flaky")):
        assert broker.message_count(queue_name) == 0, queue_name
    assert broker.message_count(layout.dead_queue("proof.flaky")) == 0


def test_one_event_published_again_and_again_has_one_effect(broker: Broker, tmp_path: Path) -> None:
    subscribers = InboxedSubscribers(tmp_path)
    subscribers.subscribe("proof.effects", ThingHappened)
    layout = broker.layout({"proof.effects": {HAPPENED}})
    publisher = broker.publisher(layout)
    broker.consumer(layout, subscribers.handle)
    envelopes = [envelope_of(ThingHappened(str(number))) for number in range(5)]

    for _ in range(3):  # e.g. confirms lost with the connection, so the outbox sent them again
        for envelope in envelopes:
            publisher.publish(envelope)

    eventually(lambda: subscribers.runs == 15, "every copy is handled")
    assert subscribers.repeats == 10
    assert subscribers.effects_per_event() == Counter({("proof.effects", envelope["id"]): 1 for envelope in envelopes})
    assert subscribers.inbox_rows() == 5


# -- stopping ------------------------------------------------------------------------------


def test_stopping_finishes_the_message_in_hand_and_hands_the_others_back(broker: Broker) -> None:
    layout = broker.layout({"proof.slow": {HAPPENED}})
    in_hand, may_finish = threading.Event(), threading.Event()
    recorder = Recorder()

    def slow(subscriber: str, envelope: dict[str, Any], attempt: int) -> None:
        in_hand.set()
        assert may_finish.wait(DEADLINE_SECONDS)
        recorder(subscriber, envelope, attempt)

    consumer = broker.consumer(layout, slow, prefetch=5)
    publisher = broker.publisher(layout)
    envelopes = [envelope_of(ThingHappened(str(number))) for number in range(5)]
    for envelope in envelopes:
        publisher.publish(envelope)
    assert in_hand.wait(DEADLINE_SECONDS)

    stopper = threading.Thread(target=consumer.stop)
    stopper.start()
    eventually(lambda: consumer._stopping.is_set(), "stop is asked for")  # the handler is still running
    may_finish.set()
    stopper.join(DEADLINE_SECONDS)

    assert not stopper.is_alive()
    assert recorder.ids("proof.slow") == [envelopes[0]["id"]]
    assert not consumer.consuming
    assert broker.message_count(layout.queue("proof.slow")) == 4


def dead_lettered(broker: Broker, layout: QueueLayout, subscriber: str, count: int, attempts: int) -> list[str]:
    """The ids of ``count`` events whose every attempt (``attempts``) failed, in the order
    their consumer put them in ``subscriber``'s dead-letter queue."""
    recorder = Recorder(failures_per_event=attempts)
    consumer = broker.consumer(layout, recorder, max_attempts=attempts, prefetch=1)
    publisher = broker.publisher(layout)
    envelopes = [envelope_of(ThingHappened(f"doomed-{number}")) for number in range(count)]
    for envelope in envelopes:
        publisher.publish(envelope)
    dead_queue = layout.dead_queue(subscriber)
    eventually(lambda: broker.message_count(dead_queue) == count, "every event is dead-lettered")
    consumer.stop()
    # One message at a time, and the retry queue holds each as long: they die in their order.
    return [envelope["id"] for envelope in envelopes]


def test_the_dead_letters_are_listed_and_stay_in_their_queue_in_their_order(broker: Broker) -> None:
    layout = broker.layout({"proof.happenings": {HAPPENED}, "proof.quiet": {UNDONE}})
    ids = dead_lettered(broker, layout, "proof.happenings", 3, attempts=2)

    first = dead_letters(broker.url, layout, ["proof.happenings", "proof.quiet"])
    again = dead_letters(broker.url, layout, ["proof.happenings", "proof.quiet"])
    dead_queue = layout.dead_queue("proof.happenings")
    taken = [broker.take(dead_queue) for _ in ids]

    assert first == again
    assert first.consumed == ()
    assert [letter.event_id for letter in first.letters] == ids
    assert {(letter.subscriber, letter.event_type, letter.attempts) for letter in first.letters} == {
        ("proof.happenings", HAPPENED, 2)
    }
    assert [letter.error for letter in first.letters] == [
        f"RuntimeError('attempt 2 of {event_id} fails')" for event_id in ids
    ]
    # Why a listing moves each message round instead of handing it back: a quorum queue counts
    # every return (x-delivery-count, from 1 on; checked on RabbitMQ 3.10) and drops a message
    # past its delivery limit. After two listings, each is still a message never delivered.
    assert [message.properties["message_id"] for message in taken] == ids
    assert [
        (message.headers.get("x-delivery-count", 0), message.delivery_info["redelivered"]) for message in taken
    ] == [(0, False)] * 3


def put_in_dead_letter_queue(broker: Broker, layout: QueueLayout, subscriber: str, **properties: Any) -> None:
    """A message in ``subscriber``'s dead-letter queue with ``properties``, however formed."""
    with Connection(broker.url, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        layout.declare(channel)
        Producer(channel).publish(
            {"id": "foreign"}, exchange="", routing_key=layout.dead_queue(subscriber), **properties
        )


def test_a_dead_letter_that_says_what_it_is_in_another_form_is_listed_and_moved_like_the_others(
    broker: Broker,
) -> None:
    """A message another tool put there, or an older consumer: neither the listing nor the
    message in hand must fail halfway on it."""
    layout = broker.layout({"proof.happenings": {HAPPENED}})
    put_in_dead_letter_queue(
        broker, layout, "proof.happenings", headers={"x-shop-attempts": "many", "x-shop-error": 42}
    )
    put_in_dead_letter_queue(
        broker, layout, "proof.happenings", message_id="m-2", headers={"x-shop-attempts": "3", "x-shop-error": "E"}
    )
    put_in_dead_letter_queue(broker, layout, "proof.happenings", headers={"x-shop-attempts": 2.5})

    listed = dead_letters(broker.url, layout, ["proof.happenings"])
    moved = retry_dead_letters(broker.url, layout, ["proof.happenings"])

    assert listed.letters == (
        BrokerDeadLetter("proof.happenings", None, None, None, None),
        BrokerDeadLetter("proof.happenings", "m-2", None, 3, "E"),
        BrokerDeadLetter("proof.happenings", None, None, None, None),
    )
    assert moved.letters == listed.letters
    assert broker.message_count(layout.dead_queue("proof.happenings")) == 0
    assert broker.message_count(layout.queue("proof.happenings")) == 3


def test_a_dead_letter_queue_that_something_consumes_is_reported_with_its_consumers(broker: Broker) -> None:
    """The broker counts only the messages no consumer holds: those are not listed, and the
    operator is told why the listing may be short."""
    layout = broker.layout({"proof.happenings": {HAPPENED}, "proof.quiet": {UNDONE}})
    put_in_dead_letter_queue(broker, layout, "proof.happenings", message_id="held")
    dead_queue = layout.dead_queue("proof.happenings")
    held: list[Any] = []
    with Connection(broker.url) as connection:
        consumer = connection.Consumer(
            Queue(dead_queue, no_declare=True), callbacks=[lambda _body, message: held.append(message)]
        )
        consumer.consume()
        connection.drain_events(timeout=DEADLINE_SECONDS)

        found = dead_letters(broker.url, layout, ["proof.happenings", "proof.quiet"])

    assert [message.properties["message_id"] for message in held] == ["held"]
    assert found.letters == ()
    assert found.consumed == ((dead_queue, 1),)


def test_a_pass_over_a_dead_letter_queue_another_pass_holds_is_refused_before_moving_anything(
    broker: Broker,
) -> None:
    """Two at once would list some letters twice or not at all, and a retry could miss the one
    it was asked for: the second pass is refused, and the first subscriber's letters, whose
    queue is free, stay where they were."""
    layout = broker.layout({"proof.happenings": {HAPPENED}, "proof.quiet": {UNDONE}})
    put_in_dead_letter_queue(broker, layout, "proof.happenings", message_id="waiting")
    busy_queue = layout.dead_queue("proof.quiet")
    with Connection(broker.url) as holder:
        holder.channel().queue_declare(queue=f"{busy_queue}.lock", exclusive=True, auto_delete=True)

        with pytest.raises(Busy) as refused:
            retry_dead_letters(broker.url, layout, ["proof.happenings", "proof.quiet"])
        still_dead = broker.message_count(layout.dead_queue("proof.happenings"))
    moved = retry_dead_letters(broker.url, layout, ["proof.happenings", "proof.quiet"])

    assert refused.value.queue == busy_queue
    assert still_dead == 1
    assert [letter.event_id for letter in moved.letters] == ["waiting"]


def test_a_dead_letter_retried_goes_back_to_its_subscriber_with_its_attempts_reset(broker: Broker) -> None:
    layout = broker.layout({"proof.happenings": {HAPPENED}})
    first, second, third = dead_lettered(broker, layout, "proof.happenings", 3, attempts=2)

    moved = retry_dead_letters(broker.url, layout, ["proof.happenings"], {second, str(uuid.uuid4())})
    # Failing once more, it succeeds at its second attempt: had it kept its count, that first
    # failure would have been its last.
    recorder = Recorder(failures_per_event=1)
    broker.consumer(layout, recorder, max_attempts=2)
    eventually(lambda: recorder.ids("proof.happenings") == [second], "the retried event is handled")

    assert [(letter.subscriber, letter.event_id) for letter in moved.letters] == [("proof.happenings", second)]
    assert [letter.event_id for letter in dead_letters(broker.url, layout, ["proof.happenings"]).letters] == [
        first,
        third,
    ]
    assert recorder.ids("proof.happenings", succeeded=False) == [second, second]
    assert recorder.attempts("proof.happenings") == [1, 2], "its attempts count from 1 again"


def test_retrying_every_dead_letter_empties_the_dead_letter_queues(broker: Broker) -> None:
    layout = broker.layout({"proof.happenings": {HAPPENED}})
    ids = dead_lettered(broker, layout, "proof.happenings", 2, attempts=1)

    moved = retry_dead_letters(broker.url, layout, ["proof.happenings"])

    assert [letter.event_id for letter in moved.letters] == ids
    assert broker.message_count(layout.dead_queue("proof.happenings")) == 0
    assert broker.message_count(layout.queue("proof.happenings")) == 2


def test_a_consumer_accepts_only_subscribers_of_its_layout() -> None:
    layout = QueueLayout({"proof.known": {HAPPENED}})

    with pytest.raises(ValueError, match=r"proof\.unknown"):
        BrokerConsumer("amqp://unused", layout, Recorder(), subscribers=["proof.known", "proof.unknown"])


# -- the broker goes away and comes back --------------------------------------------------


class Relay:
    """An outbox relay in miniature: every envelope handed to it is published, tried again
    after a pause until the broker confirms it, as the dispatcher retries a failed delivery."""

    def __init__(self, publisher: BrokerPublisher, pause: float = 0.05) -> None:
        self._publisher = publisher
        self._pause = pause
        self._waiting: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self.failures = 0
        self.confirmed = 0
        self._thread = threading.Thread(target=self._run, name="test-relay", daemon=True)
        self._thread.start()

    def record(self, envelope: dict[str, Any]) -> None:
        self._waiting.put(envelope)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(DEADLINE_SECONDS)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                envelope = self._waiting.get(timeout=0.1)
            except queue.Empty:
                continue
            while not self._stop.is_set():
                try:
                    self._publisher.publish(envelope)
                except PublishFailed:
                    self.failures += 1
                    self._stop.wait(self._pause)
                else:
                    self.confirmed += 1
                    break


def rabbitmqctl(*arguments: str) -> None:
    subprocess.run(["rabbitmqctl", *arguments], check=True, capture_output=True, timeout=120)


def broker_running() -> bool:
    result = subprocess.run(
        ["rabbitmq-diagnostics", "-q", "check_running"], capture_output=True, timeout=60, check=False
    )
    return result.returncode == 0


def restart_broker_app() -> None:
    rabbitmqctl("start_app")
    eventually(broker_running, "RabbitMQ runs again", timeout=120)


@pytest.mark.slow
def test_events_published_around_a_broker_outage_all_arrive_each_with_one_effect(
    broker: Broker, tmp_path: Path
) -> None:
    # "proof.effects" is consumed throughout and must reconnect by itself; "proof.later" is a
    # service that starts only after the outage, so its queue must have kept every message.
    subscribers = InboxedSubscribers(tmp_path)
    subscribers.subscribe("proof.effects", ThingHappened)
    subscribers.subscribe("proof.later", ThingHappened)
    layout = broker.layout({"proof.effects": {HAPPENED}, "proof.later": {HAPPENED}})
    consumer = broker.consumer(layout, subscribers.handle, subscribers=["proof.effects"], prefetch=20)
    relay = Relay(broker.publisher(layout))
    before = [envelope_of(ThingHappened(f"before-{number}")) for number in range(300)]
    during = [envelope_of(ThingHappened(f"during-{number}")) for number in range(100)]
    every_effect = Counter(
        {(subscriber, envelope["id"]): 1 for subscriber in layout.subscriptions for envelope in before + during}
    )
    try:
        for envelope in before:
            relay.record(envelope)
        eventually(lambda: subscribers.runs >= 20, "events flow")

        rabbitmqctl("stop_app")
        try:
            eventually(lambda: not consumer.consuming, "the consumer notices")
            for envelope in during:  # committed while the broker is away: the outbox keeps them
                relay.record(envelope)
            eventually(lambda: relay.failures >= 3, "publishing fails while the broker is away")
        finally:
            restart_broker_app()

        eventually(lambda: relay.confirmed == len(before) + len(during), "the relay catches up", timeout=60)
        broker.consumer(layout, subscribers.handle, subscribers=["proof.later"], prefetch=20)
        eventually(lambda: subscribers.inbox_rows() == len(every_effect), "every event is handled", timeout=60)
    finally:
        relay.stop()
        if not broker_running():
            restart_broker_app()

    assert consumer.consuming
    assert subscribers.effects_per_event() == every_effect


class BrokerLine:
    """A TCP forwarder between one app and RabbitMQ that the test cuts and mends: cut, it drops
    every connection through it and every new one at once, as a broker that went away; mended,
    it forwards again on the same port. An outage of one process's broker, while the real one
    stays up for everybody else on the machine."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5672)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        port = self._listener.getsockname()[1]
        self.url = urlunsplit(parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{port}"))
        self._up = True
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="broker-line", daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self._up = False
            sockets, self._sockets = self._sockets, []
        for each in sockets:
            with suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()

    def mend(self) -> None:
        with self._lock:
            self._up = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                up = self._up
            if not up:
                client.close()
                continue
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for each in (source, sink):
        with suppress(OSError):
            each.shutdown(socket.SHUT_RDWR)


def test_a_consumer_keeps_trying_the_broker_every_couple_of_seconds_however_long_it_is_away(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So it consumes again soon after the broker is back, however long the outage. The waits
    are recorded as the consumer draws them, and skipped: a long outage in an instant."""
    waits: list[float] = []

    def fast_forward(attempt: int, base: float, maximum: float) -> float:
        waits.append(equal_jitter(attempt, base, maximum))
        return 0.01

    monkeypatch.setattr(consumer_module, "equal_jitter", fast_forward)
    line = BrokerLine(broker.url)
    layout = broker.layout({"proof.happenings": {HAPPENED}})
    recorder = Recorder()
    # The backoff the application's consumers get: the class's own.
    consumer = BrokerConsumer(line.url, layout, recorder, connect_timeout=2.0, poll_interval=0.2)
    consumer.start()
    try:
        eventually(lambda: consumer.consuming, "the consumer consumes")
        line.cut()
        eventually(lambda: len(waits) >= 12, "the consumer tries again and again while the broker is away")
        line.mend()
        eventually(lambda: consumer.consuming, "the consumer consumes again once the broker is back")
        envelope = envelope_of(ThingHappened("after"))
        broker.publisher(layout).publish(envelope)
        eventually(lambda: recorder.ids("proof.happenings") == [envelope["id"]], "the event after the outage arrives")
    finally:
        consumer.stop()
        line.close()

    assert max(waits) <= 2.0


def test_a_consumer_warns_of_an_outage_once_a_minute_not_at_each_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its attempts come every couple of seconds: a warning each would flood the logs of a
    long outage. The clock moves 25 s per failure, so a minute passes every third one."""
    now = iter(range(25, 10_000, 25))
    monkeypatch.setattr(consumer_module, "time", SimpleNamespace(monotonic=lambda: float(next(now))))
    consumer = BrokerConsumer(
        "amqp://guest:guest@127.0.0.1:1//",  # nothing listens there: every connection fails at once
        QueueLayout({"proof.happenings": {HAPPENED}}),
        Recorder(),
        connect_timeout=1.0,
        reconnect_delay=0.001,
        reconnect_max_delay=0.001,
    )
    logs: list[MutableMapping[str, Any]]
    with capture_logs() as logs:
        # The module's logger may be cached with the app's processors by an earlier test.
        monkeypatch.setattr(consumer_module, "logger", structlog.get_logger(consumer_module.__name__))
        consumer.start()
        try:
            eventually(
                lambda: sum(log["event"] == "broker.consumer_disconnected" for log in logs) >= 7,
                "the consumer fails again and again",
            )
        finally:
            consumer.stop()

    levels = [log["log_level"] for log in logs if log["event"] == "broker.consumer_disconnected"][:7]
    assert levels == ["warning", "debug", "debug", "warning", "debug", "debug", "warning"]


# The relay's retries after a failure: an hour, so a drain after the outage can only come from
# the broker's return, never from a retry falling due while the test waits.
RELAY_RETRY_SECONDS = "3600"
# Subscribers served elsewhere that take the user context's UserRegistered.
USER_EVENT_SUBSCRIBERS = ("audit.user_log", "notification.welcome_email", "recommendation.profile")


def relay_deliveries(database: Database) -> list[tuple[str, int]]:
    """The relay's deliveries in the user context's outbox: (status, attempts), sorted."""
    d = USER_OUTBOX.deliveries
    with database.session(write=False) as session:
        return sorted((row.status, row.attempts) for row in session.execute(select(d).where(d.c.subscriber == RELAY)))


@pytest.mark.usefixtures("backend")
def test_after_a_broker_outage_the_relay_drains_as_soon_as_the_broker_is_back(
    broker: Broker, make_app: MakeApp
) -> None:
    """A process serving user relays UserRegistered to the other contexts' queues. Registered
    while its broker is away, each relay delivery fails once and is put off for an hour; once
    the broker is back, every one goes at its second attempt, without that hour passing."""
    line = BrokerLine(broker.url)
    user_events = broker.layout({name: {"user.UserRegistered"} for name in USER_EVENT_SUBSCRIBERS})
    app = make_app(
        served_contexts="user",
        events_broker_url=line.url,
        events_broker_exchange=user_events.exchange,
        events_broker_queue_prefix=user_events.queue_prefix,
        events_retry_base_seconds=RELAY_RETRY_SECONDS,
        events_retry_max_seconds=RELAY_RETRY_SECONDS,
        events_poll_seconds="0.1",
        service_token="s" * 40,
        token_secret="t" * 40,
    )
    container = container_of(app)
    register = container.user.register_user()
    users = container.user_database()
    background = BackgroundWork(container)
    background.start()
    during = 5
    try:
        register(RegisterUser(email="before@example.com", password="correct horse", name="Before"))
        eventually(lambda: relay_deliveries(users) == [("done", 1)], "the relay publishes while the broker is up")

        line.cut()
        for number in range(during):
            register(RegisterUser(email=f"during{number}@example.com", password="correct horse", name="During"))
        eventually(
            lambda: relay_deliveries(users) == [("done", 1)] + [("pending", 1)] * during,
            "every relay delivery of the outage fails once and waits for its retry",
        )
        line.mend()

        eventually(
            lambda: relay_deliveries(users) == [("done", 1)] + [("done", 2)] * during,
            "the relay's backlog goes once the broker is back",
        )
    finally:
        background.stop()
        publisher = container.broker_publisher()
        assert publisher is not None
        publisher.close()
        line.close()

    queues = [user_events.queue(name) for name in USER_EVENT_SUBSCRIBERS]
    assert {name: broker.message_count(name) for name in queues} == dict.fromkeys(queues, during + 1)
