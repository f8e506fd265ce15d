"""Events that leave the process: outbox envelopes relayed to RabbitMQ and consumed from it (kombu).

:class:`QueueLayout` names and declares what lives on the broker, :class:`BrokerPublisher` sends
an envelope as one persistent, confirmed message, and :class:`BrokerConsumer` runs a handler
on every message of the subscribers a service hosts, with retries and a dead-letter queue.
None of it knows a context: which subscribers exist and what runs them is the caller's.
"""
