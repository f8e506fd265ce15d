"""Technical shared kernel. It knows no bounded context; contexts and the composition root build on it.

Packages, one concern each:

- ``db``: databases, units of work, migrations, column types.
- ``events``: the in-process bus, outbox and inbox, the dispatcher, the broker.
- ``http``: what every endpoint shares: problems, validation, pagination, limits, OpenAPI.
- ``auth``: tokens, bearer authentication, service-to-service credentials.
- ``remote``: calling another context's service: options, breakers, access checks.
- ``observability``: the Prometheus metrics, where they are taken, and ``/metrics``.

Modules of one job each, shared across those packages, the contexts and the composition root:

- ``backoff``: the one retry schedule (deliveries, remote calls, reconnects).
- ``errors``: the kernel's errors the HTTP layer answers.
- ``logging``: structured log lines, tagged with the request id.
- ``periodic``: a task repeated on an interval in a daemon thread.
- ``request_context``: the request id and deadline, carried across logs, events and calls.
- ``serialization``: money, ids and times as the API and the events spell them.
- ``validation_messages``: validation errors in the shop's own words.
"""
