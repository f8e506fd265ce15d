"""Calls to other services of the shop, in modules that import only what each needs.

- :mod:`.options`: what the settings and the serving side know of those calls (no client
  library): imported by every process;
- :mod:`.service`: :class:`~.service.RemoteService`, JSON over HTTP with timeouts, a deadline,
  retries of idempotent calls (httpx, tenacity);
- :mod:`.breakers`: a circuit breaker per target (pybreaker);
- :mod:`.access`: the readiness check of one service's access to another.

The last three are imported only where a service URL is configured.
"""
