"""Readiness between services: every service's internal endpoints answer ``<prefix>/access``
(``http/service_auth.py``) with the key ids of its token secrets; :func:`check_access` is how
each client's readiness check reads it."""

from __future__ import annotations

from infrastructure.auth.tokens import TokenKeys
from infrastructure.errors import DependencyMisconfigured, UnexpectedAnswer
from infrastructure.remote.options import ACCESS_SUFFIX
from infrastructure.remote.service import RemoteService

OTHER_TOKEN_SECRET = (
    "it signs and accepts customers' tokens with another TOKEN_SECRET; every service must be given the same one"
)


def check_access(service: RemoteService, prefix: str, tokens: TokenKeys, *, no_internal_endpoints: str) -> None:
    """Return if the service under ``prefix`` takes this service's calls and its customers'
    tokens, signed as ``tokens`` says (readiness). Raises :class:`DependencyMisconfigured` when
    it refuses the service token, answers 404 (``no_internal_endpoints`` says what that means),
    or shares no token secret with this service; :class:`DependencyUnavailable` when it does
    not answer within the connect timeout (a probe); :class:`UnexpectedAnswer` when its answer
    makes no sense."""
    response = service.request("GET", prefix + ACCESS_SUFFIX, idempotent=False, probe=True)
    if response.status_code == 404:
        raise DependencyMisconfigured(service.name, no_internal_endpoints)
    if response.status_code != 200:
        raise UnexpectedAnswer(service.name, response.status_code, response.text[:200])
    try:
        body = response.json()
        theirs = TokenKeys(str(body["signing_key_id"]), frozenset(map(str, body["accepted_key_ids"])))
    except (ValueError, KeyError, TypeError) as error:
        raise UnexpectedAnswer(service.name, response.status_code, "not the key ids") from error
    if not tokens.compatible_with(theirs):
        raise DependencyMisconfigured(service.name, OTHER_TOKEN_SECRET)
