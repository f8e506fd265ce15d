"""What the settings and the serving side know of calls to other services, without their client.

The client (:mod:`.service`, :mod:`.breakers`) brings httpx, tenacity and pybreaker, which a process
calling no other service (the embedded default) never needs: the settings build
:class:`RemoteOptions` and the internal endpoints serve :data:`ACCESS_SUFFIX` from here, and the
client is imported only where a service URL is configured.
"""

from __future__ import annotations

from dataclasses import dataclass

# Below each service's internal prefix: answers a caller presenting the service token with the
# key ids of the token secrets the service signs with and accepts.
ACCESS_SUFFIX = "/access"
# Less than this between a server closing an idle connection and a client (the generated
# gateway, another service) reusing it is a race.
KEEPALIVE_MARGIN_SECONDS = 1


@dataclass(frozen=True)
class RemoteOptions:
    """How patient calls to one target are, and when its breaker opens."""

    connect_timeout_seconds: float = 1.0
    read_timeout_seconds: float = 5.0
    attempts: int = 3  # for idempotent calls; others get one
    backoff_seconds: float = 0.1  # ceiling of the first retry's delay; doubles per retry
    backoff_max_seconds: float = 2.0
    breaker_failures: int = 5  # consecutive failures that open the breaker
    breaker_reset_seconds: float = 10.0  # open this long, then trial calls decide
    # While open: the target's readiness endpoint, asked at most every probe_seconds; its 200
    # half-opens the breaker before the reset timeout. None: only the reset timeout does.
    ready_path: str | None = "/readyz"
    probe_seconds: float = 0.5
    # Connections are kept for the next call (keep-alive), each dropped once idle this long
    # (REMOTE_IDLE_CONNECTION_SECONDS): before the target, or a load balancer in front of it,
    # would close it, so that no call goes down a connection being closed, and fails, and
    # counts toward the breaker. 0: none kept.
    idle_connection_seconds: float = 4.0
    # Sent with every call and probe, so that the proxies, load balancers and captures between
    # tell which process of the shop called: the settings make it "modular-shop/<version> (<contexts>)".
    user_agent: str = "modular-shop"
    # REMOTE_CA_FILE: the certificate authorities https targets' certificates must chain to,
    # instead of the public ones (certifi); None: the public ones.
    ca_file: str | None = None
